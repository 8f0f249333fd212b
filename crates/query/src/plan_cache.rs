//! A cache of query plans, so that a dashboard's query is not parsed, planned and
//! optimized again each time only its time range or tag value changes.
//!
//! For a short time-series query, planning costs as much as reading the data: parsing,
//! SQL-to-plan and DataFusion's analyzer and optimizer together take a millisecond or
//! more. The key of an entry is the statement's text with the literals of its outer
//! `WHERE` clause that are compared with something (`time >= '…'`, `hostname = 'a'`,
//! `usage > 90`) replaced by placeholders `$1, $2, …` ([`parameterize`]). The first time
//! a key is seen, its generic form is planned with the placeholders (DataFusion infers
//! their types from what they are compared with) and, where possible, optimized; each
//! run then binds its own literals into a copy of that plan ([`CachedPlan::bind`]).
//!
//! The answer is the one the literal statement gets:
//! - A literal is bound only through the cast type coercion would apply to it: a string
//!   to a tag, string or timestamp, a number to a number when the cast is exact. Any
//!   other pairing is planned the ordinary way.
//! - Output column names never come from the outer `WHERE` clause, so a cached plan
//!   describes its columns as the literal statement would; the PostgreSQL names are taken
//!   from the generic plan before optimization, as the ordinary path takes them.
//! - A plan is optimized ahead only if it calls no volatile or stable function (the
//!   optimizer fixes `now()` to the planning time) and the analyzer and optimizer accept
//!   it with placeholders (gap filling, for one, wants its time range as literals).
//!   Otherwise the entry holds the unoptimized plan, and each run optimizes after binding,
//!   which still saves parsing and SQL-to-plan.
//! - Only plans that read chronosdb tables alone are cached (catalog tables, views and
//!   `series_match`, whose tables depend on the catalog, are planned each time), and an
//!   entry is used only while the tables it reads have the schemas it was planned with.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chronosdb_catalog::TableSchema;
use chronosdb_storage::Engine;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, Result, ScalarValue, plan_err};
use datafusion::datasource::{TableProvider, source_as_provider};
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use parking_lot::Mutex;

use crate::column_names::postgres_column_names;
use crate::physical_reuse::{PhysicalTemplate, Reuse};
use crate::table::ChronosTable;

/// Entries kept per database; a full cache is emptied (statements of a real workload are
/// far fewer, so this only bounds hostile or generated variety).
const MAX_ENTRIES: usize = 1024;

/// How long a key found uncacheable is left alone before its generic form is tried again
/// (a table whose schema changed while it was planned, for one, is cacheable later).
const RETRY_UNCACHEABLE: Duration = Duration::from_secs(60);

/// A literal taken out of a statement.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    String(String),
    Integer(i64),
    Float(f64),
}

/// A statement split into its cache key and the literals the key leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameterized {
    /// The statement with `$1, $2, …` in place of the literals.
    pub key: String,
    values: Vec<Literal>,
}

/// Keywords that end the outer `WHERE` clause.
const AFTER_WHERE: [Keyword; 10] = [
    Keyword::GROUP,
    Keyword::ORDER,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::HAVING,
    Keyword::WINDOW,
    Keyword::UNION,
    Keyword::EXCEPT,
    Keyword::INTERSECT,
    Keyword::FETCH,
];

/// `sql` with the literals of its outer `WHERE` clause that stand alone on one side of a
/// comparison replaced by placeholders; `None` if it is not a single `SELECT` without
/// placeholders of its own, or has no such literal.
pub fn parameterize(sql: &str) -> Option<Parameterized> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let significant: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .collect();
    match significant.first().map(|t| &t.token) {
        Some(Token::Word(w)) if w.keyword == Keyword::SELECT => {}
        _ => return None,
    }
    let offsets = LineOffsets::new(sql);
    let mut depth = 0usize;
    let mut in_where = false;
    let mut replaced: Vec<(usize, usize, Literal)> = Vec::new();
    for (i, t) in significant.iter().enumerate() {
        match &t.token {
            Token::Placeholder(_) => return None,
            // A second statement: not one query.
            Token::SemiColon if i + 1 < significant.len() => return None,
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Word(w) if depth == 0 && w.quote_style.is_none() => {
                if w.keyword == Keyword::WHERE {
                    in_where = true;
                } else if AFTER_WHERE.contains(&w.keyword) {
                    in_where = false;
                }
            }
            Token::SingleQuotedString(_) | Token::Number(_, false) if in_where => {
                let compared = i > 0
                    && matches!(
                        significant[i - 1].token,
                        Token::Eq | Token::Neq | Token::Lt | Token::Gt | Token::LtEq | Token::GtEq
                    );
                let standalone = match significant.get(i + 1).map(|t| &t.token) {
                    None | Some(Token::RParen) | Some(Token::SemiColon) => true,
                    Some(Token::Word(w)) => {
                        w.quote_style.is_none()
                            && (matches!(w.keyword, Keyword::AND | Keyword::OR)
                                || AFTER_WHERE.contains(&w.keyword))
                    }
                    _ => false,
                };
                if !(compared && standalone) {
                    continue;
                }
                let literal = match &t.token {
                    Token::SingleQuotedString(s) => Literal::String(s.clone()),
                    Token::Number(n, _) => match n.parse::<i64>() {
                        Ok(v) => Literal::Integer(v),
                        Err(_) if n.contains(['.', 'e', 'E']) => match n.parse::<f64>() {
                            Ok(v) if v.is_finite() => Literal::Float(v),
                            _ => continue,
                        },
                        Err(_) => continue,
                    },
                    _ => continue,
                };
                let (Some(start), Some(end)) = (
                    offsets.byte(t.span.start.line, t.span.start.column),
                    offsets.byte(t.span.end.line, t.span.end.column),
                ) else {
                    return None;
                };
                replaced.push((start, end, literal));
            }
            _ => {}
        }
    }
    if replaced.is_empty() {
        return None;
    }
    let mut key = String::with_capacity(sql.len());
    let mut at = 0;
    let mut values = Vec::with_capacity(replaced.len());
    for (n, (start, end, literal)) in replaced.into_iter().enumerate() {
        key.push_str(sql.get(at..start)?);
        key.push('$');
        key.push_str(&(n + 1).to_string());
        values.push(literal);
        at = end;
    }
    key.push_str(sql.get(at..)?);
    Some(Parameterized { key, values })
}

/// Byte offsets of the tokenizer's (line, column) locations, both counted from 1 and
/// columns in characters.
struct LineOffsets<'a> {
    sql: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineOffsets<'a> {
    fn new(sql: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self { sql, starts }
    }

    fn byte(&self, line: u64, column: u64) -> Option<usize> {
        let start = *self
            .starts
            .get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let chars = usize::try_from(column).ok()?.checked_sub(1)?;
        let rest = self.sql.get(start..)?;
        match rest.char_indices().nth(chars) {
            Some((i, _)) => Some(start + i),
            // The location just past the last character.
            None if rest.chars().count() == chars => Some(self.sql.len()),
            None => None,
        }
    }
}

/// What the cache holds for a key.
#[derive(Debug, Clone)]
pub enum Lookup {
    Hit(Arc<CachedPlan>),
    /// The key's plans cannot be cached (see the module comment): plan as usual.
    Uncacheable,
    Miss,
}

/// The plans of one database's statements.
#[derive(Debug)]
pub struct PlanCache {
    engine: Arc<Engine>,
    database: String,
    /// A key's plan, or when it was found uncacheable.
    entries: Mutex<HashMap<String, Result<Arc<CachedPlan>, Instant>>>,
}

impl PlanCache {
    pub fn new(engine: Arc<Engine>, database: &str) -> Self {
        Self {
            engine,
            database: database.to_string(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The entry of `key`, if it is still current.
    pub fn lookup(&self, key: &str) -> Lookup {
        let entry = self.entries.lock().get(key).cloned();
        match entry {
            None => Lookup::Miss,
            Some(Err(since)) if since.elapsed() < RETRY_UNCACHEABLE => Lookup::Uncacheable,
            Some(Ok(plan)) if plan.is_current(&self.engine, &self.database) => Lookup::Hit(plan),
            Some(_) => {
                self.entries.lock().remove(key);
                Lookup::Miss
            }
        }
    }

    /// Makes and keeps the entry of `key` from its generic plan (`plan`, with
    /// placeholders, as planned from `statement`); `None` if it cannot be cached.
    pub fn insert(
        &self,
        state: &SessionState,
        key: &str,
        statement: SqlStatement,
        plan: LogicalPlan,
    ) -> Option<Arc<CachedPlan>> {
        let entry = CachedPlan::new(state, &self.engine, &self.database, statement, plan);
        if let Some(entry) = &entry {
            tracing::debug!(key, optimized = entry.optimized, "plan cached");
        }
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_string(), entry.clone().ok_or_else(Instant::now));
        entry
    }
}

/// The generic plan of one key.
#[derive(Debug)]
pub struct CachedPlan {
    /// The parsed generic statement (its kind is what callers look at).
    pub statement: SqlStatement,
    plan: LogicalPlan,
    optimized: bool,
    /// The type of each placeholder, `$1` first.
    types: Vec<DataType>,
    /// PostgreSQL's names of the result columns (see `column_names`).
    names: Option<Vec<String>>,
    /// The tables read and the schemas the plan was made with.
    tables: Vec<(String, TableSchema)>,
    /// The physical plan, once it is known to be reusable (optimized plans only).
    template: Arc<PhysicalTemplate>,
}

impl CachedPlan {
    fn new(
        state: &SessionState,
        engine: &Engine,
        database: &str,
        statement: SqlStatement,
        plan: LogicalPlan,
    ) -> Option<Arc<Self>> {
        if has_extension(&plan) {
            return None;
        }
        let tables = tables_read(&plan, engine, database)?;
        let types = placeholder_types(&plan)?;
        let names = postgres_column_names(&plan);
        // The optimized plan is kept only if every placeholder in it can still be bound:
        // chronosdb's rewrites (last points, gap filling) hold filters inside their own
        // nodes and tables, where binding does not reach.
        let optimized = match calls_volatile(&plan) {
            true => None,
            false => state.optimize(&plan).ok().filter(|optimized| {
                !has_extension(optimized) && tables_read(optimized, engine, database).is_some()
            }),
        };
        let (plan, optimized) = match optimized {
            Some(optimized) => (optimized, true),
            None => (plan, false),
        };
        Some(Arc::new(Self {
            statement,
            plan,
            optimized,
            types,
            names,
            tables,
            template: Arc::default(),
        }))
    }

    /// Whether the tables still have the schemas the plan was made with.
    fn is_current(&self, engine: &Engine, database: &str) -> bool {
        let catalog = engine.catalog().snapshot();
        self.tables.iter().all(|(name, schema)| {
            catalog
                .table(database, name)
                .is_some_and(|def| def.schema == *schema)
        })
    }

    /// The plan with the literals of `statement` bound: optimized ones wrapped in an
    /// [`OptimizedPlan`]; `None` if a literal cannot be bound exactly as the literal
    /// statement would use it (plan that statement as usual then).
    pub fn bind(&self, statement: &Parameterized) -> Option<LogicalPlan> {
        if statement.values.len() != self.types.len() {
            return None;
        }
        let values: Vec<ScalarValue> = statement
            .values
            .iter()
            .zip(&self.types)
            .map(|(value, target)| bind_value(value, target))
            .collect::<Option<_>>()?;
        let plan = bind_placeholders(self.plan.clone(), &values).ok()?;
        Some(match self.optimized {
            true => LogicalPlan::Extension(Extension {
                node: Arc::new(OptimizedPlan {
                    plan,
                    names: self.names.clone(),
                    reuse: Some(Reuse {
                        template: self.template.clone(),
                        values,
                    }),
                }),
            }),
            false => plan,
        })
    }
}

/// `plan` with `$n` replaced by `values[n - 1]`. Each value has its placeholder's type,
/// so, unlike DataFusion's `replace_params_with_values`, schemas are kept as they are
/// rather than computed again node by node (which cost as much as the rest of a cached
/// run); expression names are kept as DataFusion keeps them.
fn bind_placeholders(plan: LogicalPlan, values: &[ScalarValue]) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            if !expr.exists(|e| Ok(matches!(e, Expr::Placeholder(_))))? {
                return Ok(Transformed::no(expr));
            }
            let name = names.save(&expr);
            let bound = expr.transform_up(|e| match e {
                Expr::Placeholder(placeholder) => {
                    let value = placeholder
                        .id
                        .strip_prefix('$')
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| values.get(n.checked_sub(1)?));
                    match value {
                        Some(value) => Ok(Transformed::yes(Expr::Literal(value.clone(), None))),
                        None => plan_err!("no value for placeholder {}", placeholder.id),
                    }
                }
                other => Ok(Transformed::no(other)),
            })?;
            Ok(bound.update_data(|e| name.restore(e)))
        })
    })
    .map(|t| t.data)
}

/// `value` as a literal of `target`, through the cast type coercion would apply.
fn bind_value(value: &Literal, target: &DataType) -> Option<ScalarValue> {
    match (value, target) {
        (Literal::String(s), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            ScalarValue::Utf8(Some(s.clone())).cast_to(target).ok()
        }
        (Literal::String(s), DataType::Dictionary(key, value)) if **value == DataType::Utf8 => {
            Some(ScalarValue::Dictionary(
                key.clone(),
                Box::new(ScalarValue::Utf8(Some(s.clone()))),
            ))
        }
        (Literal::String(s), DataType::Timestamp(..)) => {
            ScalarValue::Utf8(Some(s.clone())).cast_to(target).ok()
        }
        (Literal::Integer(i), t) if t.is_numeric() => {
            let original = ScalarValue::Int64(Some(*i));
            exact_cast(&original, target)
        }
        (Literal::Float(x), DataType::Float64 | DataType::Float32) => {
            exact_cast(&ScalarValue::Float64(Some(*x)), target)
        }
        _ => None,
    }
}

/// `value` cast to `target`, if casting it back gives `value` again.
fn exact_cast(value: &ScalarValue, target: &DataType) -> Option<ScalarValue> {
    let cast = value.cast_to(target).ok()?;
    let back = cast.cast_to(&value.data_type()).ok()?;
    (back == *value).then_some(cast)
}

/// The chronosdb tables `plan` reads, with their schemas; `None` if it reads anything
/// else or a table's schema changed while it was planned.
fn tables_read(
    plan: &LogicalPlan,
    engine: &Engine,
    database: &str,
) -> Option<Vec<(String, TableSchema)>> {
    let catalog = engine.catalog().snapshot();
    let mut tables: Vec<(String, TableSchema)> = Vec::new();
    let mut cacheable = true;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let table = source_as_provider(&scan.source)
                .ok()
                .and_then(|p| p.downcast_ref::<ChronosTable>().cloned());
            let def = table
                .as_ref()
                .filter(|t| t.database() == database)
                .and_then(|t| catalog.table(database, t.name()).map(|def| (t, def)));
            match def {
                Some((table, def))
                    if def.schema.arrow_schema().fields() == table.schema().fields() =>
                {
                    if !tables.iter().any(|(name, _)| name == table.name()) {
                        tables.push((table.name().to_string(), def.schema.clone()));
                    }
                }
                _ => cacheable = false,
            }
        }
        Ok(match cacheable {
            true => TreeNodeRecursion::Continue,
            false => TreeNodeRecursion::Stop,
        })
    });
    cacheable.then_some(tables)
}

/// The type of each placeholder, `$1` first; `None` if one is untyped or missing.
fn placeholder_types(plan: &LogicalPlan) -> Option<Vec<DataType>> {
    let types = plan.get_parameter_types().ok()?;
    (1..=types.len())
        .map(|n| types.get(&format!("${n}")).cloned().flatten())
        .collect()
}

/// Whether `plan` calls a function whose value is not fixed by its arguments (`now()`,
/// `random()`).
fn calls_volatile(plan: &LogicalPlan) -> bool {
    any_node(plan, |node| {
        let mut found = false;
        let _ = node.apply_expressions(|expr| {
            found = expr.exists(|e| {
                Ok(matches!(e, Expr::ScalarFunction(f)
                    if f.func.signature().volatility != Volatility::Immutable))
            })?;
            Ok(match found {
                true => TreeNodeRecursion::Stop,
                false => TreeNodeRecursion::Continue,
            })
        });
        found
    })
}

/// Whether `plan` holds a node of an extension (their expressions are their own).
fn has_extension(plan: &LogicalPlan) -> bool {
    any_node(plan, |node| matches!(node, LogicalPlan::Extension(_)))
}

/// Whether a node of `plan`, subqueries included, is one `found` accepts.
fn any_node(plan: &LogicalPlan, mut found: impl FnMut(&LogicalPlan) -> bool) -> bool {
    let mut any = false;
    let _ = plan.apply_with_subqueries(|node| {
        any = found(node);
        Ok(match any {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    });
    any
}

/// A plan that is already analyzed and optimized: front ends plan it physically as it
/// is (see [`optimized_inner`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct OptimizedPlan {
    pub plan: LogicalPlan,
    /// PostgreSQL's result column names, from the plan before optimization.
    pub names: Option<Vec<String>>,
    /// The statement's physical plan template and this run's literals.
    pub reuse: Option<Reuse>,
}

impl OptimizedPlan {
    /// The physical plan rebound from the statement's template for a run in one
    /// partition, and the task context to run it in; `None` when it has to be planned
    /// (see `PhysicalTemplate::rebind_in_one_partition`).
    pub fn rebind_in_one_partition(
        &self,
        state: &SessionState,
    ) -> Result<Option<crate::physical_reuse::Rebound>> {
        match &self.reuse {
            Some(reuse) => reuse
                .template
                .rebind_in_one_partition(state, &self.plan, &reuse.values),
            None => Ok(None),
        }
    }

    /// The physical plan: rebound from the statement's template when it has one that
    /// fits this run (see `physical_reuse`), planned in full otherwise.
    pub async fn create_physical_plan(
        &self,
        state: &SessionState,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match &self.reuse {
            Some(reuse) => {
                reuse
                    .template
                    .create_physical_plan(state, &self.plan, &reuse.values)
                    .await
            }
            None => {
                state
                    .query_planner()
                    .create_physical_plan(&self.plan, state)
                    .await
            }
        }
    }
}

impl UserDefinedLogicalNodeCore for OptimizedPlan {
    fn name(&self) -> &str {
        "OptimizedPlan"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        Vec::new()
    }

    fn schema(&self) -> &DFSchemaRef {
        self.plan.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "OptimizedPlan")
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, _inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(self.clone())
    }
}

/// The plan inside `plan` if it is an [`OptimizedPlan`].
pub fn optimized_inner(plan: &LogicalPlan) -> Option<&OptimizedPlan> {
    match plan {
        LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<OptimizedPlan>(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sql: &str) -> Option<String> {
        parameterize(sql).map(|p| p.key)
    }

    #[test]
    fn where_literals_become_placeholders() {
        let p = parameterize(
            "SELECT time_bucket('1 minute', time) AS m, max(u) FROM cpu WHERE hostname = 'h1' AND time >= '2016-01-01T00:00:00Z' AND u > 9.5 AND n < 3 GROUP BY 1 ORDER BY 1 LIMIT 5",
        )
        .expect("parameterized");
        assert_eq!(
            p.key,
            "SELECT time_bucket('1 minute', time) AS m, max(u) FROM cpu WHERE hostname = $1 AND time >= $2 AND u > $3 AND n < $4 GROUP BY 1 ORDER BY 1 LIMIT 5"
        );
        assert_eq!(
            p.values,
            vec![
                Literal::String("h1".into()),
                Literal::String("2016-01-01T00:00:00Z".into()),
                Literal::Float(9.5),
                Literal::Integer(3),
            ]
        );
    }

    #[test]
    fn only_standalone_comparisons_are_taken() {
        // Casts, arithmetic, BETWEEN, IN lists, intervals and the select list stay.
        assert_eq!(key("SELECT 'a' = 'a' FROM t WHERE x = '1'::int"), None);
        assert_eq!(key("SELECT * FROM t WHERE x = 1 + 2"), None);
        assert_eq!(key("SELECT * FROM t WHERE x BETWEEN 1 AND 2"), None);
        assert_eq!(key("SELECT * FROM t WHERE x IN ('a', 'b')"), None);
        assert_eq!(
            key("SELECT * FROM t WHERE time > now() - interval '1 hour'"),
            None
        );
        assert_eq!(
            key("SELECT * FROM t WHERE (a = 'x' OR a = 'y') AND b <> 2;").as_deref(),
            Some("SELECT * FROM t WHERE (a = $1 OR a = $2) AND b <> $3;")
        );
        // A subquery in FROM keeps its literals; the outer WHERE gives up its own.
        assert_eq!(
            key("SELECT * FROM (SELECT * FROM t WHERE a = 'x') s WHERE b = 'y'").as_deref(),
            Some("SELECT * FROM (SELECT * FROM t WHERE a = 'x') s WHERE b = $1")
        );
    }

    #[test]
    fn other_statements_are_left_alone() {
        assert_eq!(key("DELETE FROM t WHERE a = 'x'"), None);
        assert_eq!(key("SELECT * FROM t WHERE a = $1 AND b = 'x'"), None);
        assert_eq!(key("SELECT * FROM t WHERE a = 'x'; SELECT 1"), None);
        assert_eq!(key("SELECT * FROM t"), None);
        assert_eq!(key("SELECT * FROM t WHERE a = 99999999999999999999"), None);
        assert_eq!(key("SELECT * FROM t WHERE a = 'unterminated"), None);
    }

    #[test]
    fn offsets_follow_lines_and_characters() {
        let p = parameterize("SELECT *\nFROM t\nWHERE ä = 'é' AND b = 2").expect("key");
        assert_eq!(p.key, "SELECT *\nFROM t\nWHERE ä = $1 AND b = $2");
        assert_eq!(
            p.values,
            vec![Literal::String("é".into()), Literal::Integer(2)]
        );
    }

    #[test]
    fn literals_bind_only_through_exact_casts() {
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert!(bind_value(&Literal::String("h".into()), &dict).is_some());
        assert!(bind_value(&Literal::Integer(3), &DataType::Float64).is_some());
        assert!(bind_value(&Literal::Float(1.5), &DataType::Int64).is_none());
        assert!(bind_value(&Literal::Integer(300), &DataType::Int8).is_none());
        assert!(bind_value(&Literal::String("x".into()), &DataType::Float64).is_none());
        let ts = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, None);
        assert_eq!(
            bind_value(&Literal::String("2016-01-01T00:00:01Z".into()), &ts),
            Some(ScalarValue::TimestampNanosecond(
                Some(1_451_606_401_000_000_000),
                None
            ))
        );
        assert!(bind_value(&Literal::String("yesterday-ish".into()), &ts).is_none());
    }
}
