//! How a [`Scope`] restricts a query: the one place that writes the owner check, and the scoped
//! get and paged list built on it.
//!
//! Every scoped query reaches the course a row belongs to as `c`, and the scope keeps the rows
//! whose course it may see. A row outside the scope is reported exactly like a missing one
//! (`NotFound`), never as forbidden, so no caller can learn that another instructor's object
//! exists.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, QueryBuilder};

use crate::{Page, Paged, Result, Scope, Store, StoreError};

/// A row type both backends can read (every `#[derive(sqlx::FromRow)]` struct of the store).
pub(crate) trait AnyRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

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

/// A value a listing's filter binds.
#[derive(Clone, Copy, Debug)]
enum Value {
    Id(i64),
    Real(f32),
}

/// The optional conditions of a listing (`AND …`), kept as data so that each backend's query
/// builder can push them.
#[derive(Debug, Default)]
pub(crate) struct Filter(Vec<(String, Option<Value>)>);

impl Filter {
    /// `AND {column} = value` when there is a value.
    pub(crate) fn equal(mut self, column: &str, value: Option<i64>) -> Self {
        if let Some(value) = value {
            self.0
                .push((format!(" AND {column} = "), Some(Value::Id(value))));
        }
        self
    }

    /// `AND {column} >= value` when there is a value.
    pub(crate) fn at_least(mut self, column: &str, value: Option<f32>) -> Self {
        if let Some(value) = value {
            self.0
                .push((format!(" AND {column} >= "), Some(Value::Real(value))));
        }
        self
    }

    /// `AND {condition}` when `when` holds.
    pub(crate) fn and_if(mut self, when: bool, condition: &str) -> Self {
        if when {
            self.0.push((format!(" AND {condition}"), None));
        }
        self
    }
}

per_backend! {
    use sqlx::{Database, Executor};

    /// Pushes the condition on `c` that keeps the rows `scope` may see.
    pub(crate) fn push_scope(query: &mut QueryBuilder<'_, Db>, scope: Scope) {
        match scope {
            Scope::All => query.push("TRUE"),
            Scope::OwnedBy(owner) => query.push("c.owner_id = ").push_bind(owner),
        };
    }

    fn push_filter(query: &mut QueryBuilder<'_, Db>, filter: &Filter) {
        for (sql, value) in &filter.0 {
            query.push(sql);
            match value {
                Some(Value::Id(id)) => {
                    query.push_bind(*id);
                }
                Some(Value::Real(real)) => {
                    query.push_bind(*real);
                }
                None => {}
            }
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
        T: for<'r> FromRow<'r, <Db as Database>::Row> + Send + Unpin,
        E: Executor<'c, Database = Db>,
    {
        let mut query = QueryBuilder::new(format!(
            "SELECT {columns} FROM {} WHERE {} = ",
            table.from, table.id
        ));
        query.push_bind(id).push(" AND ");
        push_scope(&mut query, scope);
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
    /// transaction that then writes it or below it, so the row cannot vanish between check and
    /// write.
    pub(crate) async fn require_visible(
        connection: &mut Conn,
        table: &Table,
        scope: Scope,
        id: i64,
    ) -> Result<()> {
        fetch_visible::<(i64,), _>(connection, table, table.id, scope, id)
            .await
            .map(drop)
    }

    /// See [`Store::list_visible`].
    pub(crate) async fn list_page<T>(
        pool: &sqlx::Pool<Db>,
        table: &Table,
        columns: &str,
        scope: Scope,
        filter: &Filter,
        order: &str,
        page: Page,
    ) -> Result<Paged<T>>
    where
        T: for<'r> FromRow<'r, <Db as Database>::Row> + Send + Unpin,
    {
        let select = |what: &str| {
            let mut query = QueryBuilder::new(format!("SELECT {what} FROM {} WHERE ", table.from));
            push_scope(&mut query, scope);
            push_filter(&mut query, filter);
            query
        };
        let total = select("COUNT(*)")
            .build_query_scalar::<i64>()
            .fetch_one(pool)
            .await?;
        let mut query = select(columns);
        query
            .push(format!(" ORDER BY {order} LIMIT "))
            .push_bind(page.limit())
            .push(" OFFSET ")
            .push_bind(page.offset());
        let items = query.build_query_as::<T>().fetch_all(pool).await?;
        Ok(Paged { total, items })
    }
}

impl Store {
    /// The row `id` of `table` (its `columns`, read as `T`) if `scope` sees it, else `NotFound`.
    pub(crate) async fn get_visible<T: AnyRow>(
        &self,
        table: &Table,
        columns: &str,
        scope: Scope,
        id: i64,
    ) -> Result<T> {
        with_pool!(self, pool => fetch_visible(pool, table, columns, scope, id).await)
    }

    /// One page, in `order`, of the rows of `table` that `scope` sees and `filter` keeps, with
    /// how many such rows there are on all pages.
    pub(crate) async fn list_visible<T: AnyRow>(
        &self,
        table: &Table,
        columns: &str,
        scope: Scope,
        filter: Filter,
        order: &str,
        page: Page,
    ) -> Result<Paged<T>> {
        with_pool!(self, pool => list_page(pool, table, columns, scope, &filter, order, page).await)
    }
}
