//! How a [`Scope`] restricts a query: the one place that writes the owner check, and the scoped
//! get and paged list built on it.
//!
//! Every scoped query reaches the course a row belongs to as `c`, and the scope keeps the rows
//! whose course it may see. A row outside the scope is reported exactly like a missing one
//! (`NotFound`), never as forbidden, so no caller can learn that another instructor's object
//! exists.

use sqlx::sqlite::SqliteRow;
use sqlx::{Executor, FromRow, QueryBuilder, Sqlite, SqliteConnection};

use crate::{Page, Paged, Result, Scope, Store, StoreError};

/// Where rows of one kind live and how they reach the course that decides who sees them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Table {
    /// What `NotFound` calls a row of it.
    pub entity: &'static str,
    /// The `FROM` clause: the rows, joined to their course as `c` (a course is its own, `courses c`).
    pub from: &'static str,
    /// The rows' id column as `from` names it.
    pub id: &'static str,
}

impl Scope {
    /// Pushes the condition on `c` that keeps the rows this scope may see.
    pub(crate) fn push_condition(self, query: &mut QueryBuilder<'_, Sqlite>) {
        match self {
            Scope::All => query.push("TRUE"),
            Scope::OwnedBy(owner) => query.push("c.owner_id = ").push_bind(owner),
        };
    }
}

/// The row `id` of `table` (its `columns`, read as `T`) if `scope` sees it, else `NotFound`.
pub(crate) async fn fetch_visible<'c, T, E>(
    executor: E,
    table: &Table,
    columns: &str,
    scope: Scope,
    id: i64,
) -> Result<T>
where
    T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    E: Executor<'c, Database = Sqlite>,
{
    let mut query = QueryBuilder::new(format!(
        "SELECT {columns} FROM {} WHERE {} = ",
        table.from, table.id
    ));
    query.push_bind(id).push(" AND ");
    scope.push_condition(&mut query);
    query
        .build_query_as::<T>()
        .fetch_optional(executor)
        .await?
        .ok_or(StoreError::NotFound {
            entity: table.entity,
            id,
        })
}

/// Fails with `NotFound` unless `scope` sees the row `id` of `table`. Called inside the
/// transaction that then writes it or below it, so the row cannot vanish between check and write.
pub(crate) async fn require_visible(
    connection: &mut SqliteConnection,
    table: &Table,
    scope: Scope,
    id: i64,
) -> Result<()> {
    fetch_visible::<(i64,), _>(connection, table, table.id, scope, id)
        .await
        .map(drop)
}

impl Store {
    /// The row `id` of `table` (its `columns`, read as `T`) if `scope` sees it, else `NotFound`.
    pub(crate) async fn get_visible<T>(
        &self,
        table: &Table,
        columns: &str,
        scope: Scope,
        id: i64,
    ) -> Result<T>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        fetch_visible(&self.pool, table, columns, scope, id).await
    }

    /// One page, in `order`, of the rows of `table` that `scope` sees and `filter` keeps
    /// (`filter` pushes `AND …` conditions; it runs once for the count and once for the page),
    /// with how many such rows there are on all pages.
    pub(crate) async fn list_visible<T>(
        &self,
        table: &Table,
        columns: &str,
        scope: Scope,
        filter: impl Fn(&mut QueryBuilder<'_, Sqlite>),
        order: &str,
        page: Page,
    ) -> Result<Paged<T>>
    where
        T: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let select = |what: &str| {
            let mut query = QueryBuilder::new(format!("SELECT {what} FROM {} WHERE ", table.from));
            scope.push_condition(&mut query);
            filter(&mut query);
            query
        };
        let total = select("COUNT(*)")
            .build_query_scalar::<i64>()
            .fetch_one(&self.pool)
            .await?;
        let mut query = select(columns);
        query
            .push(format!(" ORDER BY {order} LIMIT "))
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.offset());
        let items = query.build_query_as::<T>().fetch_all(&self.pool).await?;
        Ok(Paged { total, items })
    }
}

/// Pushes `AND {column} = value` when there is a value: an optional filter of a listing.
pub(crate) fn and_equal(query: &mut QueryBuilder<'_, Sqlite>, column: &str, value: Option<i64>) {
    if let Some(value) = value {
        query.push(format!(" AND {column} = ")).push_bind(value);
    }
}
