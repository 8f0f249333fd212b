//! Result column names as PostgreSQL gives them.
//!
//! DataFusion names an unaliased expression after its full text (`count(*)`,
//! `max(cpu.usage_user)`, `Int64(1)`); PostgreSQL names it after the function (`count`,
//! `max`) or `?column?`. psql headers, Grafana series names and ORM result mappings show
//! these names, so the pgwire front end describes a query's columns the way PostgreSQL's
//! `FigureColname` would. Only the names sent to the client change, not the plan (whose
//! names DataFusion requires to be distinct).

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection};

/// PostgreSQL's name for the column an aggregate or window output was given by
/// DataFusion (`max(cpu.usage_user)` → `max`), or `?column?`.
fn name_of_output(name: &str) -> String {
    let function = name.split_once('(').map(|(head, _)| head).unwrap_or("");
    let is_function = !function.is_empty()
        && function.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && function
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if is_function {
        function.to_string()
    } else {
        "?column?".to_string()
    }
}

/// PostgreSQL's name (`FigureColname`) for an output expression, or `None` to keep the
/// name it has: a table column or a name the user gave.
fn postgres_name(expr: &Expr, name: &str) -> Option<String> {
    let renamed = match expr {
        // An output named apart from its equals by `alias_duplicate_names`.
        Expr::Alias(alias) if alias.name.contains(DUPLICATE_MARK) => alias
            .name
            .split_once(DUPLICATE_MARK)
            .map_or(alias.name.clone(), |(name, _)| name.to_string()),
        // DataFusion aliases some expressions itself (`count(Int64(1)) AS count(*)`);
        // a user's alias rarely holds parentheses.
        Expr::Alias(alias) if alias.name.contains('(') => name_of_output(&alias.name),
        Expr::Alias(_) => return None,
        Expr::Column(c) if c.name.contains(DUPLICATE_MARK) => c
            .name
            .split_once(DUPLICATE_MARK)
            .map_or(c.name.clone(), |(name, _)| name.to_string()),
        Expr::Column(c) if c.relation.is_some() => return None,
        Expr::Column(c) if !c.name.contains('(') => return None,
        Expr::Column(c) => name_of_output(&c.name),
        Expr::ScalarFunction(f) if f.name() == "make_array" => "array".into(),
        Expr::ScalarFunction(f) => f.name().to_string(),
        // `INTERVAL '1 day'` is a typed literal, named after its type as PostgreSQL names
        // `interval '1 day'`; other constants are `?column?`.
        Expr::Literal(value, _) if matches!(value.data_type(), DataType::Interval(_)) => {
            "interval".into()
        }
        Expr::AggregateFunction(f) => f.func.name().to_string(),
        Expr::WindowFunction(f) => f.fun.name().to_string(),
        // A cast is named after what it casts if that has a name, else after its type
        // (`CAST(1 + 1 AS int)` is `int4`), as PostgreSQL names a `TypeCast`.
        // A cast of a cast or of a CASE is named after its own type: PostgreSQL's
        // `FigureColname` lets only a column's or a function's name through a cast.
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Column(c) => c.name.clone(),
            inner => match postgres_name(inner, name) {
                Some(inner_name)
                    if inner_name != "?column?"
                        && !matches!(inner, Expr::Cast(_) | Expr::TryCast(_) | Expr::Case(_)) =>
                {
                    inner_name
                }
                _ if matches!(inner, Expr::Alias(_) | Expr::Column(_)) => return None,
                _ => postgres_type_name(cast.field.data_type())
                    .map_or_else(|| "?column?".into(), str::to_string),
            },
        },
        Expr::TryCast(cast) => match cast.expr.as_ref() {
            Expr::Column(c) => c.name.clone(),
            _ => "?column?".into(),
        },
        Expr::Case(_) => "case".into(),
        _ => "?column?".into(),
    };
    (renamed != name).then_some(renamed)
}

/// PostgreSQL's name of a type, as a cast to it is named (`int4`, `float8`, `timestamp`).
fn postgres_type_name(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::Boolean => "bool",
        DataType::Int8 | DataType::Int16 => "int2",
        DataType::Int32 => "int4",
        DataType::Int64 => "int8",
        DataType::Float32 => "float4",
        DataType::Float64 => "float8",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Timestamp(_, Some(_)) => "timestamptz",
        DataType::Interval(_) => "interval",
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric",
        _ => return None,
    })
}

/// The projection below the sorts and limits above it.
fn projection_below(plan: &LogicalPlan) -> Option<&Projection> {
    match plan {
        LogicalPlan::Projection(p) => Some(p),
        LogicalPlan::Sort(s) => projection_below(&s.input),
        LogicalPlan::Limit(l) => projection_below(&l.input),
        _ => None,
    }
}

/// The expressions that make `plan`'s output. When the outermost projection only picks
/// columns of another projection below a sort (`SELECT NOT b … ORDER BY time` keeps
/// `time` in the inner projection for the sort and drops it above), the inner
/// expressions that those columns name.
fn output_exprs(plan: &LogicalPlan) -> Option<Vec<Expr>> {
    let outer = projection_below(plan)?;
    let picks_columns = outer.expr.iter().all(|e| matches!(e, Expr::Column(_)));
    let inner = match outer.input.as_ref() {
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) if picks_columns => {
            projection_below(&outer.input)
        }
        _ => None,
    };
    let Some(inner) = inner else {
        return Some(outer.expr.clone());
    };
    let inner_schema = inner.schema.clone();
    outer
        .expr
        .iter()
        .map(|e| {
            let Expr::Column(column) = e else {
                return None;
            };
            let index = inner_schema.maybe_index_of_column(column)?;
            inner.expr.get(index).cloned()
        })
        .collect()
}

/// The names PostgreSQL would give `plan`'s output columns, or `None` when they are the
/// names the plan has. Aliases and table columns keep their names; two columns may get
/// the same name (`count`, `count`), as in PostgreSQL.
pub fn postgres_column_names(plan: &LogicalPlan) -> Option<Vec<String>> {
    if let Some(optimized) = crate::plan_cache::optimized_inner(plan) {
        return optimized.names.clone();
    }
    let exprs = output_exprs(plan)?;
    let fields = plan.schema().fields();
    if exprs.len() != fields.len() {
        return None;
    }
    let mut changed = false;
    let names = exprs
        .iter()
        .zip(fields)
        .map(|(expr, field)| match postgres_name(expr, field.name()) {
            Some(name) => {
                changed = true;
                name
            }
            None => field.name().clone(),
        })
        .collect();
    changed.then_some(names)
}

/// `sql` with each unaliased cast of a column in its select list named after the column
/// (`time::text` → `time::text AS "time"`, PostgreSQL's name for it), or `None` if it has
/// none. DataFusion gives such a cast the column's own name, so a query that also sorts
/// by the column (`SELECT time::text … ORDER BY time`) fails with two projections of one
/// name; with the alias, `ORDER BY time` means the output column, as in PostgreSQL. The
/// front end plans the rewritten statement only after the original failed that way.
pub fn alias_casts_of_columns(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, SelectItem};

    rewrite_select_list(sql, |_, item| {
        let SelectItem::UnnamedExpr(SqlExpr::Cast { expr, .. }) = item else {
            return false;
        };
        let column = match expr.as_ref() {
            SqlExpr::Identifier(ident) => ident.value.clone(),
            SqlExpr::CompoundIdentifier(parts) => match parts.last() {
                Some(ident) => ident.value.clone(),
                None => return false,
            },
            _ => return false,
        };
        alias_item(item, column);
        true
    })
}

/// Gives the unnamed expression `item` the alias `name`.
fn alias_item(item: &mut datafusion::sql::sqlparser::ast::SelectItem, name: String) {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem};
    if let SelectItem::UnnamedExpr(expr) =
        std::mem::replace(item, SelectItem::Wildcard(Default::default()))
    {
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: Ident::with_quote('"', name),
        };
    }
}

/// `sql` with its select list changed by `change` (given each item and its position, true
/// when it changed it), if it is a single `SELECT` and some item changed; else `None`.
fn rewrite_select_list(
    sql: &str,
    mut change: impl FnMut(usize, &mut datafusion::sql::sqlparser::ast::SelectItem) -> bool,
) -> Option<String> {
    use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let [Statement::Query(query)] = statements.as_mut_slice() else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let mut changed = false;
    for (position, item) in select.projection.iter_mut().enumerate() {
        changed |= change(position, item);
    }
    changed.then(|| statements[0].to_string())
}

/// `sql` with each unaliased `EXTRACT(…)`, `SUBSTRING(…)`, `POSITION(… IN …)` and
/// `OVERLAY(…)` of its select list named as PostgreSQL names it (`extract`, …), or
/// `None` if it has none. DataFusion plans these as `date_part`, `substr`, `strpos` and
/// `overlay` calls, named after those; only the statement's text still tells which was
/// written, so the front end aliases them before planning.
pub fn alias_special_syntax(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, SelectItem};

    let lower = sql.to_ascii_lowercase();
    if !["extract", "substring", "position", "overlay"]
        .iter()
        .any(|word| lower.contains(word))
    {
        return None;
    }
    rewrite_select_list(sql, |_, item| {
        let SelectItem::UnnamedExpr(expr) = item else {
            return false;
        };
        let name = match expr {
            SqlExpr::Extract { .. } => "extract",
            // `SUBSTR(…)` is parsed as this too, and named `substr` as planned.
            SqlExpr::Substring {
                shorthand: false, ..
            } => "substring",
            SqlExpr::Position { .. } => "position",
            SqlExpr::Overlay { .. } => "overlay",
            _ => return false,
        };
        alias_item(item, name.to_string());
        true
    })
}

/// Separates the PostgreSQL name of an output from the position that makes it unique in
/// the aliases [`alias_duplicate_names`] gives; a character no one writes in a name.
const DUPLICATE_MARK: char = '\u{1f}';

/// `sql` with every item of its select list aliased apart (`SELECT v, v` → `SELECT v AS
/// "v<mark>1", v AS "v<mark>2"`), or `None` if it is not a single `SELECT`. DataFusion
/// refuses two outputs of one name, which PostgreSQL allows (`SELECT count(*), count(*)`,
/// `SELECT v, v`, generated SQL of BI tools and ORMs); [`postgres_column_names`] gives the
/// client the name before the mark, so both columns are named as in PostgreSQL. The front
/// end plans the rewritten statement only after the original failed that way.
pub fn alias_duplicate_names(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem};

    rewrite_select_list(sql, |position, item| {
        let name = match item {
            SelectItem::UnnamedExpr(expr) => sql_output_name(expr),
            SelectItem::ExprWithAlias { alias, .. } => {
                *alias =
                    Ident::with_quote('"', format!("{}{DUPLICATE_MARK}{position}", alias.value));
                return true;
            }
            _ => return false,
        };
        alias_item(item, format!("{name}{DUPLICATE_MARK}{position}"));
        true
    })
}

/// PostgreSQL's name (`FigureColname`) for a select-list expression as written.
fn sql_output_name(expr: &datafusion::sql::sqlparser::ast::Expr) -> String {
    use datafusion::sql::sqlparser::ast::Expr as SqlExpr;
    match expr {
        SqlExpr::Identifier(ident) => ident.value.clone(),
        SqlExpr::CompoundIdentifier(parts) => parts
            .last()
            .map_or_else(|| "?column?".to_string(), |p| p.value.clone()),
        SqlExpr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|part| part.as_ident())
            .map_or_else(|| "?column?".to_string(), |i| i.value.to_lowercase()),
        // A cast lets a column's or a function's name through; otherwise it is named
        // after its type (`CAST(7 AS smallint)` is `int2`).
        SqlExpr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            inner @ (SqlExpr::Identifier(_)
            | SqlExpr::CompoundIdentifier(_)
            | SqlExpr::Function(_)) => sql_output_name(inner),
            SqlExpr::Nested(inner) if sql_output_name(inner) != "?column?" => {
                sql_output_name(inner)
            }
            _ => sql_type_name(data_type).unwrap_or("?column?").to_string(),
        },
        SqlExpr::Nested(expr) => match expr.as_ref() {
            inner @ (SqlExpr::Identifier(_)
            | SqlExpr::CompoundIdentifier(_)
            | SqlExpr::Function(_)
            | SqlExpr::Nested(_)
            | SqlExpr::Cast { .. }) => sql_output_name(inner),
            _ => "?column?".to_string(),
        },
        SqlExpr::Case { .. } => "case".to_string(),
        _ => "?column?".to_string(),
    }
}

/// PostgreSQL's name of a type as written in a cast (`smallint` is `int2`), for the
/// types chronosdb has.
fn sql_type_name(data_type: &datafusion::sql::sqlparser::ast::DataType) -> Option<&'static str> {
    let written = data_type.to_string().to_ascii_lowercase();
    let base = written.split('(').next().unwrap_or("").trim();
    Some(match base {
        "smallint" | "int2" => "int2",
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "real" | "float4" => "float4",
        "double precision" | "double" | "float8" | "float" => "float8",
        "text" => "text",
        "varchar" | "character varying" => "varchar",
        "boolean" | "bool" => "bool",
        "date" => "date",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "timestamptz" | "timestamp with time zone" => "timestamptz",
        "interval" => "interval",
        "numeric" | "decimal" => "numeric",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::{alias_casts_of_columns, alias_duplicate_names, name_of_output};

    #[test]
    fn duplicate_outputs_are_aliased_apart() {
        assert_eq!(
            alias_duplicate_names("SELECT v, count(*), CAST(m.v AS int), 1 AS a FROM m")
                .map(|s| s.replace('\u{1f}', "|"))
                .as_deref(),
            Some(
                r#"SELECT v AS "v|0", count(*) AS "count|1", CAST(m.v AS INT) AS "v|2", 1 AS "a|3" FROM m"#
            )
        );
        assert_eq!(
            alias_duplicate_names(
                "SELECT CAST(7 AS smallint), 7::integer, CAST(CAST(1 AS int) AS text)"
            )
            .map(|s| s.replace('\u{1f}', "|"))
            .as_deref(),
            Some(
                r#"SELECT CAST(7 AS SMALLINT) AS "int2|0", 7::INTEGER AS "int4|1", CAST(CAST(1 AS INT) AS TEXT) AS "text|2""#
            )
        );
        assert_eq!(alias_duplicate_names("DELETE FROM m"), None);
    }

    #[test]
    fn casts_of_columns_get_the_column_name() {
        assert_eq!(
            alias_casts_of_columns(
                "SELECT time::text, CAST(m.v AS TEXT), v + 1 FROM m ORDER BY time"
            )
            .as_deref(),
            Some(
                r#"SELECT time::TEXT AS "time", CAST(m.v AS TEXT) AS "v", v + 1 FROM m ORDER BY time"#
            )
        );
        assert_eq!(
            alias_casts_of_columns("SELECT time::text AS t FROM m"),
            None
        );
        assert_eq!(alias_casts_of_columns("DELETE FROM m"), None);
    }

    #[test]
    fn outputs_are_named_after_their_function() {
        assert_eq!(name_of_output("count(*)"), "count");
        assert_eq!(name_of_output("max(cpu.usage_user)"), "max");
        assert_eq!(name_of_output("Int64(1)"), "?column?");
        assert_eq!(name_of_output("cpu.a + cpu.b"), "?column?");
    }
}
