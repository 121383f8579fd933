//! `attendansee users …`: account administration without the API (the first admin comes from here).

use std::io::BufRead;

use anyhow::{Context, Result, bail};

use attendansee_services::users as accounts;
use attendansee_store::{Role, Store};

use crate::cli::UsersCommand;
use crate::config::Common;

pub async fn run(common: &Common, command: UsersCommand) -> Result<()> {
    let database = common.database()?;
    if !database.is_shared() {
        std::fs::create_dir_all(&common.data_dir).with_context(|| {
            format!("cannot create data directory {}", common.data_dir.display())
        })?;
    }
    let store = Store::connect(&database).await?;
    let result = match command {
        UsersCommand::Create {
            username,
            admin,
            password_stdin: _,
        } => create(&store, &username, admin).await,
        UsersCommand::Token {
            username,
            label,
            days,
        } => token(&store, &username, &label, days).await,
        UsersCommand::List => list(&store).await,
    };
    store.close().await;
    result
}

async fn create(store: &Store, username: &str, admin: bool) -> Result<()> {
    // Refused before a password is asked for.
    accounts::check_username(username).map_err(anyhow::Error::msg)?;
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let role = if admin { Role::Admin } else { Role::Instructor };
    let user = accounts::Accounts::new(store)
        .create(username, password, role)
        .await
        .map_err(cli_error)?;
    println!(
        "created {} '{}' (id {})",
        user.role.as_str(),
        user.username,
        user.id
    );
    Ok(())
}

async fn token(store: &Store, username: &str, label: &str, days: u32) -> Result<()> {
    if !(1..=3650).contains(&days) {
        bail!("--days must be 1 to 3650");
    }
    let accounts = accounts::Accounts::new(store);
    let Some(user) = accounts.find(username).await.map_err(cli_error)? else {
        bail!("no user named '{username}'");
    };
    if !user.active {
        bail!("user '{username}' is deactivated");
    }
    let issued = accounts
        .issue_token(&user, label, chrono::Duration::days(i64::from(days)))
        .await
        .map_err(cli_error)?;
    println!("{}", issued.secret);
    Ok(())
}

async fn list(store: &Store) -> Result<()> {
    for user in store.list_users(attendansee_store::Page::ALL).await?.items {
        let state = if user.active { "active" } else { "inactive" };
        println!(
            "{:>6}  {:<10}  {:<8}  {}",
            user.id,
            user.role.as_str(),
            state,
            user.username
        );
    }
    Ok(())
}

/// A service's error as the command line shows it: the message, and the cause the server would
/// only log (there is no server log here).
fn cli_error(error: attendansee_services::ServiceError) -> anyhow::Error {
    match error.cause {
        Some(cause) => anyhow::anyhow!("{}: {cause}", error.message),
        None => anyhow::anyhow!("{}", error.message),
    }
}
