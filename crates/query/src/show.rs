//! `SHOW TABLES`, `SHOW TAG KEYS`, `SHOW TAG VALUES`, `SHOW FIELD KEYS` and `SHOW SERIES`:
//! InfluxQL's schema exploration, rewritten into queries over the `system` tables.
//!
//! The SQL parser has no grammar for these, so a statement that is exactly one of them is
//! recognised here, before parsing, and replaced by the equivalent `SELECT`.

use crate::system::{SYSTEM_SCHEMA, literal};

/// The `SELECT` a `SHOW` statement stands for, or `None` if `sql` is not one of ours.
pub fn rewrite_show(sql: &str) -> Option<String> {
    let text = sql.trim().trim_end_matches(';').replace('=', " = ");
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    if let ["SHOW", "SERVER_VERSION"] = upper.as_slice() {
        let version = crate::functions::postgres::POSTGRES_VERSION;
        return Some(format!("SELECT '{version}' AS server_version"));
    }
    let (view, columns, rest) = match upper.as_slice() {
        ["SHOW", "TABLES", ..] | ["SHOW", "MEASUREMENTS", ..] => ("tables", "table_name", 2),
        ["SHOW", "TAG", "KEYS", ..] => ("tag_keys", "table_name, tag_key", 3),
        ["SHOW", "TAG", "VALUES", ..] => (
            "tag_values",
            "table_name, tag_key, tag_value, series_count",
            3,
        ),
        ["SHOW", "FIELD", "KEYS", ..] => ("fields", "table_name, field_name, field_type", 3),
        ["SHOW", "SERIES", ..] => (
            "series",
            "table_name, series, first_time, last_time, point_count",
            2,
        ),
        _ => return None,
    };
    let mut conditions = Vec::new();
    let mut i = rest;
    while i < words.len() {
        match upper[i] {
            "FROM" if i + 1 < words.len() => {
                conditions.push(format!("table_name = {}", literal(unquote(words[i + 1]))));
                i += 2;
            }
            "WITH"
                if view == "tag_values"
                    && upper.get(i + 1) == Some(&"KEY")
                    && upper.get(i + 2) == Some(&"=")
                    && i + 3 < words.len() =>
            {
                conditions.push(format!("tag_key = {}", literal(unquote(words[i + 3]))));
                i += 4;
            }
            _ => return None,
        }
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let order: Vec<String> = (1..=columns.split(',').count().min(3))
        .map(|n| n.to_string())
        .collect();
    Some(format!(
        "SELECT {columns} FROM {SYSTEM_SCHEMA}.{view}{filter} ORDER BY {}",
        order.join(", ")
    ))
}

/// `"name"` or `'name'` → `name`.
fn unquote(word: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = word.strip_prefix(q).and_then(|w| w.strip_suffix(q)) {
            return inner;
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use super::rewrite_show;

    #[test]
    fn show_statements_become_selects() {
        assert_eq!(
            rewrite_show("show tables;").as_deref(),
            Some("SELECT table_name FROM system.tables ORDER BY 1")
        );
        assert_eq!(
            rewrite_show("SHOW TAG VALUES FROM \"cpu\" WITH KEY=\"host\"").as_deref(),
            Some(
                "SELECT table_name, tag_key, tag_value, series_count FROM system.tag_values WHERE table_name = 'cpu' AND tag_key = 'host' ORDER BY 1, 2, 3"
            )
        );
        assert_eq!(
            rewrite_show("SHOW TAG KEYS FROM cpu").as_deref(),
            Some(
                "SELECT table_name, tag_key FROM system.tag_keys WHERE table_name = 'cpu' ORDER BY 1, 2"
            )
        );
        assert_eq!(rewrite_show("SHOW TimeZone"), None);
        assert_eq!(rewrite_show("SHOW TAG KEYS ON db"), None);
        assert_eq!(rewrite_show("SELECT 1"), None);
    }
}
