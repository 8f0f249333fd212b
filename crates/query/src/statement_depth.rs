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
//!
//! sqlparser also backtracks: an argument list is parsed once as `name => value` and,
//! when that fails, again as a value, so nested calls (`f(g(h(…)))`, `NOT (NOT (…))`)
//! cost time exponential in their nesting; 20 levels take seconds. The check therefore
//! also bounds the nesting of call-like parentheses (an opening parenthesis right after a
//! word) and of `CASE … END` to [`MAX_CALL_NESTING`]; plain parentheses, lists and
//! chains are not affected.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// The deepest expression nesting a statement may have (estimated as described above).
/// PostgreSQL answers `1+1+…+1` with a few thousand terms; so does chronosdb, with room
/// to spare on the server's query threads (`QUERY_THREAD_STACK`).
pub const MAX_STATEMENT_DEPTH: usize = 10_000;

/// The deepest nesting of call-like parentheses (`f(`, `NOT (`, `IN (`, `EXISTS (`) and
/// `CASE` a statement may have. sqlparser refuses most statements nested much deeper
/// anyway (its recursion limit is 50; near it, a nested `CASE` is misread as a column
/// named `case`); below this, parsing stays in the milliseconds.
pub const MAX_CALL_NESTING: usize = 16;

/// The stack each of the server's runtime threads gets, so that a statement of
/// [`MAX_STATEMENT_DEPTH`] plans, runs and drops on it. Only the pages a thread touches
/// are backed by memory.
pub const QUERY_THREAD_STACK: usize = 64 * 1024 * 1024;

/// A statement nests deeper than [`MAX_STATEMENT_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementTooComplex {
    #[error(
        "statement too complex: its expressions nest about {depth} levels deep, more than \
         the {limit} this server plans; write long chains of OR/AND as IN (…) lists, or \
         split the statement"
    )]
    Depth { depth: usize, limit: usize },
    #[error(
        "statement too complex: its function calls nest {nesting} levels deep, more than \
         the {limit} this server parses; compute inner parts in a subquery or split the \
         statement"
    )]
    Calls { nesting: usize, limit: usize },
}

/// Refuses `sql` if its expressions may nest deeper than [`MAX_STATEMENT_DEPTH`], or its
/// calls deeper than [`MAX_CALL_NESTING`].
pub fn check_statement_depth(sql: &str) -> Result<(), StatementTooComplex> {
    check_depth(sql, MAX_STATEMENT_DEPTH, MAX_CALL_NESTING)
}

fn check_depth(sql: &str, limit: usize, call_limit: usize) -> Result<(), StatementTooComplex> {
    // Every token is at least one byte long, and the estimate grows by at most one a token;
    // call nesting needs as many opening parentheses or `CASE`s.
    if sql.len() <= limit && possible_openers(sql.as_bytes()) <= call_limit {
        return Ok(());
    }
    // A statement that does not tokenize fails later with its own syntax error.
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return Ok(());
    };
    // Operators since the last comma, per open level (the first is outside any), and
    // what opened the level.
    let mut levels: Vec<(usize, Opener)> = vec![(0, Opener::Plain)];
    // levels.len() + the sum of levels, kept as tokens arrive.
    let mut depth = 1usize;
    let mut deepest = depth;
    let mut calls = 0usize;
    let mut after_word = false;
    for token in &tokens {
        if matches!(token, Token::Whitespace(_)) {
            continue;
        }
        let opener = match token {
            Token::LParen | Token::LBracket if after_word => Some(Opener::Call),
            Token::LParen | Token::LBracket => Some(Opener::Plain),
            Token::Word(word) if word.quote_style.is_none() && word.keyword == Keyword::CASE => {
                Some(Opener::Case)
            }
            _ => None,
        };
        let closes = match token {
            Token::RParen | Token::RBracket => {
                matches!(levels.last(), Some((_, Opener::Plain | Opener::Call))) && levels.len() > 1
            }
            Token::Word(word) if word.quote_style.is_none() && word.keyword == Keyword::END => {
                matches!(levels.last(), Some((_, Opener::Case)))
            }
            _ => false,
        };
        if let Some(opener) = opener {
            levels.push((0, opener));
            depth += 1;
            if opener != Opener::Plain {
                calls += 1;
                if calls > call_limit {
                    return Err(StatementTooComplex::Calls {
                        nesting: calls,
                        limit: call_limit,
                    });
                }
            }
        } else if closes {
            let (operators, opener) = levels.pop().unwrap_or((0, Opener::Plain));
            depth -= 1 + operators;
            calls -= usize::from(opener != Opener::Plain);
        }
        match token {
            _ if opener.is_some() || closes => {}
            Token::Comma | Token::SemiColon => {
                if let Some((current, _)) = levels.last_mut() {
                    depth -= *current;
                    *current = 0;
                }
            }
            token if is_operator(token) => {
                if let Some((current, _)) = levels.last_mut() {
                    *current += 1;
                    depth += 1;
                }
            }
            _ => {}
        }
        after_word = may_call(token);
        deepest = deepest.max(depth);
        if deepest > limit {
            return Err(StatementTooComplex::Depth {
                depth: deepest,
                limit,
            });
        }
    }
    Ok(())
}

/// Whether a parenthesis right after `token` may open a call's argument list: after a
/// name or a word sqlparser may try as one (`NOT (`), not after a keyword that joins or
/// starts expressions (`AND (`, `THEN (`, `WHERE (`).
fn may_call(token: &Token) -> bool {
    let Token::Word(word) = token else {
        return false;
    };
    word.quote_style.is_some()
        || !matches!(
            word.keyword,
            Keyword::AND
                | Keyword::OR
                | Keyword::XOR
                | Keyword::WHEN
                | Keyword::THEN
                | Keyword::ELSE
                | Keyword::SELECT
                | Keyword::WHERE
                | Keyword::HAVING
                | Keyword::ON
                | Keyword::BY
                | Keyword::AS
                | Keyword::FROM
                | Keyword::IS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::BETWEEN
                | Keyword::DISTINCT
                | Keyword::RETURNING
        )
}

/// What opened a nesting level: a parenthesis or bracket on its own, one right after a
/// word (a call, `IN (`, `NOT (`), or `CASE` (closed by its `END`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opener {
    Plain,
    Call,
    Case,
}

/// How many opening parentheses and brackets, and `case`s in any letter case, `sql`
/// holds: at least as many as the levels a call nesting may open.
fn possible_openers(sql: &[u8]) -> usize {
    let brackets = sql.iter().filter(|b| matches!(b, b'(' | b'[')).count();
    let cases = sql
        .windows(4)
        .filter(|w| w.eq_ignore_ascii_case(b"case"))
        .count();
    brackets + cases
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
        assert_eq!(check_depth("SELECT 1+1+1+1", 20, 16), Ok(()));
    }

    #[test]
    fn operator_chains_count_each_operator() {
        assert_eq!(check_depth(&chain(50, "+"), 60, 16), Ok(()));
        let refused = check_depth(&chain(100, "+"), 60, 16).unwrap_err();
        assert!(
            matches!(refused, StatementTooComplex::Depth { depth, .. } if depth > 60),
            "{refused:?}"
        );
        assert!(check_depth(&chain(100, " OR 1 = "), 60, 16).is_err());
        assert!(check_depth(&chain(100, "::int + "), 60, 16).is_err());
    }

    #[test]
    fn nesting_counts_every_open_level() {
        let nested = format!("SELECT {}1{}", "(".repeat(100), ")".repeat(100));
        assert!(check_depth(&nested, 60, 16).is_err());
        let not = format!("SELECT {}true", "NOT ".repeat(100));
        assert!(check_depth(&not, 60, 16).is_err());
    }

    #[test]
    fn call_nesting_is_bounded_apart_from_plain_parentheses() {
        let calls = |n| format!("SELECT {}1{}", "abs(".repeat(n), ")".repeat(n));
        assert_eq!(check_depth(&calls(16), 10_000, 16), Ok(()));
        assert_eq!(
            check_depth(&calls(17), 10_000, 16),
            Err(StatementTooComplex::Calls {
                nesting: 17,
                limit: 16
            })
        );
        let not = format!("SELECT {}true{}", "NOT (".repeat(17), ")".repeat(17));
        assert!(check_depth(&not, 10_000, 16).is_err());
        // Siblings do not nest, and plain parentheses are not calls.
        let siblings = vec!["abs(abs(1))"; 100].join(" + ");
        assert_eq!(
            check_depth(&format!("SELECT {siblings}"), 10_000, 16),
            Ok(())
        );
        let case = |n| {
            let open = "CASE WHEN x = 1 THEN (1) ELSE ".repeat(n);
            format!("SELECT {open}1{}", " END".repeat(n))
        };
        assert_eq!(check_depth(&case(16), 10_000, 16), Ok(()));
        assert!(check_depth(&case(17), 10_000, 16).is_err());
        let plain = format!("SELECT {}1{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(check_depth(&plain, 10_000, 16), Ok(()));
        let and = format!(
            "SELECT 1 WHERE {}true{}",
            "x AND (".repeat(40),
            ")".repeat(40)
        );
        assert_eq!(check_depth(&and, 10_000, 16), Ok(()));
    }

    #[test]
    fn lists_are_flat() {
        let list: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        let sql = format!("SELECT * FROM t WHERE x IN ({})", list.join(", "));
        assert_eq!(check_depth(&sql, 60, 16), Ok(()));
        let values: Vec<String> = (0..1000).map(|i| format!("({i}, 'a+b')")).collect();
        let sql = format!("INSERT INTO t VALUES {}", values.join(", "));
        assert_eq!(check_depth(&sql, 60, 16), Ok(()));
    }

    #[test]
    fn operators_inside_strings_and_comments_do_not_count() {
        let sql = format!("SELECT '{}' -- {}", "+".repeat(500), "+".repeat(500));
        assert_eq!(check_depth(&sql, 60, 16), Ok(()));
    }

    #[test]
    fn a_chain_ends_at_its_closing_parenthesis() {
        let sql = format!("SELECT ({}), ({})", chain(40, "+"), chain(40, "+"));
        assert_eq!(check_depth(&sql, 60, 16), Ok(()));
    }
}
