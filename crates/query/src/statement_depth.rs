//! Refuses statements whose expressions nest deeper than the server plans safely.
//!
//! sqlparser limits the nesting it recurses into (parentheses, `NOT`, `CASE`, subqueries),
//! but parses a chain of infix operators (`1+1+…+1`, `a=1 OR a=2 OR …`, `x::int::int…`) in
//! a loop, into a tree as deep as the chain is long. Every later step walks that tree
//! recursively: chronosdb's own rewrites, DataFusion's planner and optimizer (which grow
//! their stack on the heap), physical expressions while they evaluate, and `Drop`. A tree
//! deep enough overflows a thread's stack, which aborts the whole process.
//!
//! [`check_statement_depth`] bounds that depth from the token stream, before anything
//! parses it: no walk of a tree, so no recursion at any size. The estimate counts, at
//! every point of the statement, the open parentheses plus the operators seen since the
//! last comma at each open level; a tree built from those tokens cannot be deeper. It
//! over-counts a little (`a=1 AND b=2` is two levels, estimated three), never under.
//! Statements shorter than the limit in bytes cannot exceed it and are not scanned, so
//! the check costs nothing on ordinary queries.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// The deepest expression nesting a statement may have (estimated as described above).
/// PostgreSQL answers `1+1+…+1` with a few thousand terms; so does chronosdb, with room
/// to spare on the server's query threads (`QUERY_THREAD_STACK`).
pub const MAX_STATEMENT_DEPTH: usize = 10_000;

/// The stack each of the server's runtime threads gets, so that a statement of
/// [`MAX_STATEMENT_DEPTH`] plans, runs and drops on it. Only the pages a thread touches
/// are backed by memory.
pub const QUERY_THREAD_STACK: usize = 64 * 1024 * 1024;

/// A statement nests deeper than [`MAX_STATEMENT_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "statement too complex: its expressions nest about {depth} levels deep, more than the \
     {limit} this server plans; write long chains of OR/AND as IN (…) lists, or split the \
     statement"
)]
pub struct StatementTooComplex {
    pub depth: usize,
    pub limit: usize,
}

/// Refuses `sql` if its expressions may nest deeper than [`MAX_STATEMENT_DEPTH`].
pub fn check_statement_depth(sql: &str) -> Result<(), StatementTooComplex> {
    check_depth(sql, MAX_STATEMENT_DEPTH)
}

fn check_depth(sql: &str, limit: usize) -> Result<(), StatementTooComplex> {
    // Every token is at least one byte long, and the estimate grows by at most one a token.
    if sql.len() <= limit {
        return Ok(());
    }
    // A statement that does not tokenize fails later with its own syntax error.
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return Ok(());
    };
    // Operators since the last comma, per open parenthesis level (the first is outside any).
    let mut levels: Vec<usize> = vec![0];
    // levels.len() + the sum of levels, kept as tokens arrive.
    let mut depth = 1usize;
    let mut deepest = depth;
    for token in &tokens {
        match token {
            Token::LParen | Token::LBracket => {
                levels.push(0);
                depth += 1;
            }
            Token::RParen | Token::RBracket if levels.len() > 1 => {
                depth -= 1 + levels.pop().unwrap_or(0);
            }
            Token::RParen | Token::RBracket => {}
            Token::Comma | Token::SemiColon => {
                if let Some(current) = levels.last_mut() {
                    depth -= *current;
                    *current = 0;
                }
            }
            token if is_operator(token) => {
                if let Some(current) = levels.last_mut() {
                    *current += 1;
                    depth += 1;
                }
            }
            _ => {}
        }
        deepest = deepest.max(depth);
        if deepest > limit {
            return Err(StatementTooComplex {
                depth: deepest,
                limit,
            });
        }
    }
    Ok(())
}

/// Whether `token` may make an expression one level deeper: an operator symbol or an
/// operator keyword. Names, literals, separators and whitespace do not.
fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(word) => {
            word.quote_style.is_none()
                && matches!(
                    word.keyword,
                    Keyword::AND
                        | Keyword::OR
                        | Keyword::XOR
                        | Keyword::NOT
                        | Keyword::IS
                        | Keyword::IN
                        | Keyword::LIKE
                        | Keyword::ILIKE
                        | Keyword::SIMILAR
                        | Keyword::BETWEEN
                        | Keyword::COLLATE
                        | Keyword::AT
                        | Keyword::OVERLAPS
                        | Keyword::DIV
                        | Keyword::CASE
                        | Keyword::SELECT
                )
        }
        Token::EOF
        | Token::Number(..)
        | Token::Char(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::QuoteDelimitedStringLiteral(_)
        | Token::NationalQuoteDelimitedStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_)
        | Token::Whitespace(_)
        | Token::Period
        | Token::Placeholder(_)
        | Token::LBrace
        | Token::RBrace => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(terms: usize, operator: &str) -> String {
        let mut sql = String::from("SELECT 1");
        for _ in 1..terms {
            sql.push_str(operator);
            sql.push('1');
        }
        sql
    }

    #[test]
    fn short_statements_are_not_scanned() {
        assert_eq!(check_depth("SELECT 1+1+1+1", 20), Ok(()));
    }

    #[test]
    fn operator_chains_count_each_operator() {
        assert_eq!(check_depth(&chain(50, "+"), 60), Ok(()));
        let refused = check_depth(&chain(100, "+"), 60).unwrap_err();
        assert!(refused.depth > 60, "{refused:?}");
        assert!(check_depth(&chain(100, " OR 1 = "), 60).is_err());
        assert!(check_depth(&chain(100, "::int + "), 60).is_err());
    }

    #[test]
    fn nesting_counts_every_open_level() {
        let nested = format!("SELECT {}1{}", "(".repeat(100), ")".repeat(100));
        assert!(check_depth(&nested, 60).is_err());
        let not = format!("SELECT {}true", "NOT ".repeat(100));
        assert!(check_depth(&not, 60).is_err());
    }

    #[test]
    fn lists_are_flat() {
        let list: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        let sql = format!("SELECT * FROM t WHERE x IN ({})", list.join(", "));
        assert_eq!(check_depth(&sql, 60), Ok(()));
        let values: Vec<String> = (0..1000).map(|i| format!("({i}, 'a+b')")).collect();
        let sql = format!("INSERT INTO t VALUES {}", values.join(", "));
        assert_eq!(check_depth(&sql, 60), Ok(()));
    }

    #[test]
    fn operators_inside_strings_and_comments_do_not_count() {
        let sql = format!("SELECT '{}' -- {}", "+".repeat(500), "+".repeat(500));
        assert_eq!(check_depth(&sql, 60), Ok(()));
    }

    #[test]
    fn a_chain_ends_at_its_closing_parenthesis() {
        let sql = format!("SELECT ({}), ({})", chain(40, "+"), chain(40, "+"));
        assert_eq!(check_depth(&sql, 60), Ok(()));
    }
}
