//! Label selectors in the API server's text form (`tier=gold,region in (eu, us),!legacy`), parsed so that the
//! provisioner can match `--reconcile-selector` itself against the store namespaces it already watches, instead of
//! opening a second watch of the same namespaces filtered by the API server.
//!
//! The grammar is the API server's (`k8s.io/apimachinery/pkg/labels`): requirements separated by commas, each `key`,
//! `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)` or `key notin (v1,v2)`, with spaces allowed
//! between the parts. The numeric `key>n` and `key<n` are refused: nothing here needs them.

use kube::core::{Expression, Selector};
use store_platform_runtime::kubernetes::is_dns_subdomain;

/// `text` as a selector; the error says what is wrong and where.
pub fn parse(text: &str) -> Result<Selector, String> {
    let tokens = tokens(text);
    let mut at = 0;
    let mut expressions = Vec::new();
    if tokens.is_empty() {
        return Ok(Selector::default());
    }
    loop {
        expressions.push(requirement(&tokens, &mut at)?);
        match tokens.get(at) {
            None => break,
            Some(Token::Comma) => at += 1,
            Some(other) => return Err(format!("expected ',' after a requirement, found {other}")),
        }
    }
    Ok(expressions.into_iter().collect())
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Not,
    Equals,
    NotEquals,
    Open,
    Close,
    Comma,
    Compare(char),
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Word(word) => write!(f, "'{word}'"),
            Token::Not => f.write_str("'!'"),
            Token::Equals => f.write_str("'='"),
            Token::NotEquals => f.write_str("'!='"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
            Token::Compare(c) => write!(f, "'{c}'"),
        }
    }
}

fn tokens(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ',' => tokens.push(Token::Comma),
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            '<' | '>' => tokens.push(Token::Compare(c)),
            '!' if chars.peek() == Some(&'=') => {
                chars.next();
                tokens.push(Token::NotEquals);
            }
            '!' => tokens.push(Token::Not),
            '=' => {
                if chars.peek() == Some(&'=') {
                    chars.next();
                }
                tokens.push(Token::Equals);
            }
            c => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || ",()<>!=".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    tokens
}

fn requirement(tokens: &[Token], at: &mut usize) -> Result<Expression, String> {
    let mut next = || {
        let token = tokens.get(*at).cloned();
        *at += 1;
        token
    };
    match next() {
        Some(Token::Not) => match next() {
            Some(Token::Word(key)) => Ok(Expression::DoesNotExist(checked_key(key)?)),
            other => Err(expected("a key after '!'", other)),
        },
        Some(Token::Word(key)) => {
            let key = checked_key(key)?;
            match tokens.get(*at) {
                None | Some(Token::Comma) => Ok(Expression::Exists(key)),
                Some(Token::Equals) => {
                    *at += 1;
                    Ok(Expression::Equal(key, value(tokens, at)?))
                }
                Some(Token::NotEquals) => {
                    *at += 1;
                    Ok(Expression::NotEqual(key, value(tokens, at)?))
                }
                Some(Token::Word(op)) if op == "in" || op == "notin" => {
                    let not = op == "notin";
                    *at += 1;
                    let values = set(tokens, at)?;
                    Ok(if not {
                        Expression::NotIn(key, values)
                    } else {
                        Expression::In(key, values)
                    })
                }
                Some(Token::Compare(c)) => Err(format!(
                    "the operator '{c}' of key {key:?} is not supported here"
                )),
                Some(other) => Err(format!(
                    "expected an operator after key {key:?}, found {other}"
                )),
            }
        }
        other => Err(expected("a key", other)),
    }
}

/// The value after `=` or `!=`: a word, or nothing (an empty value) before a comma or the end.
fn value(tokens: &[Token], at: &mut usize) -> Result<String, String> {
    match tokens.get(*at) {
        None | Some(Token::Comma) => Ok(String::new()),
        Some(Token::Word(value)) => {
            *at += 1;
            checked_value(value.clone())
        }
        Some(other) => Err(format!("expected a value, found {other}")),
    }
}

/// `(v1, v2, …)`: at least one value.
fn set(tokens: &[Token], at: &mut usize) -> Result<std::collections::BTreeSet<String>, String> {
    if tokens.get(*at) != Some(&Token::Open) {
        return Err(expected("'(' after in or notin", tokens.get(*at).cloned()));
    }
    *at += 1;
    let mut values = std::collections::BTreeSet::new();
    loop {
        match tokens.get(*at) {
            Some(Token::Word(value)) => {
                values.insert(checked_value(value.clone())?);
                *at += 1;
            }
            other => return Err(expected("a value in the set", other.cloned())),
        }
        match tokens.get(*at) {
            Some(Token::Comma) => *at += 1,
            Some(Token::Close) => {
                *at += 1;
                return Ok(values);
            }
            other => return Err(expected("',' or ')' in the set", other.cloned())),
        }
    }
}

fn expected(what: &str, found: Option<Token>) -> String {
    match found {
        Some(token) => format!("expected {what}, found {token}"),
        None => format!("expected {what}, found the end"),
    }
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name.
fn checked_key(key: String) -> Result<String, String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key.as_str()),
    };
    let prefix_ok = prefix.is_none_or(is_dns_subdomain);
    if prefix_ok && !name.is_empty() && is_name(name) {
        Ok(key)
    } else {
        Err(format!("{key:?} is not a valid label key"))
    }
}

/// A label value: empty, or a name.
fn checked_value(value: String) -> Result<String, String> {
    if value.is_empty() || is_name(&value) {
        Ok(value)
    } else {
        Err(format!("{value:?} is not a valid label value"))
    }
}

/// At most 63 characters: letters, digits, `-`, `_` and `.`, beginning and ending with a letter or digit.
fn is_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    name.len() <= 63
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::SelectorExt as _;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A selector, the labels it is matched against, and whether it matches them.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);

    #[test]
    fn every_form_the_api_server_accepts_is_read_as_it_reads_it() {
        let tenant = "store-platform.io/tenant";
        let cases: &[Case] = &[
            ("", &[], true),
            ("tier=gold", &[("tier", "gold")], true),
            ("tier = gold", &[("tier", "silver")], false),
            ("tier==gold", &[("tier", "gold")], true),
            ("tier!=gold", &[], true),
            ("tier!=gold", &[("tier", "gold")], false),
            ("tier=", &[("tier", "")], true),
            ("tier", &[("tier", "")], true),
            ("!tier", &[("tier", "x")], false),
            ("! tier", &[], true),
            ("tier in (gold, silver)", &[("tier", "silver")], true),
            ("tier in (gold,silver)", &[], false),
            ("tier notin (gold,silver)", &[], true),
            ("tier notin (gold,silver)", &[("tier", "gold")], false),
            (
                "store-platform.io/tenant notin (crash,fleet),tier",
                &[(tenant, "acme"), ("tier", "x")],
                true,
            ),
            (
                "store-platform.io/tenant=acme,!legacy",
                &[(tenant, "acme"), ("legacy", "1")],
                false,
            ),
        ];
        for (text, on, matches) in cases {
            let selector = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(
                selector.matches(&labels(on)),
                *matches,
                "{text:?} on {on:?}"
            );
        }
    }

    #[test]
    fn what_the_api_server_refuses_is_refused_with_where() {
        for (text, says) in [
            ("tier in ()", "expected a value in the set, found ')'"),
            (
                "tier in (gold",
                "expected ',' or ')' in the set, found the end",
            ),
            (
                "tier in gold",
                "expected '(' after in or notin, found 'gold'",
            ),
            (
                "replicas>1",
                "the operator '>' of key \"replicas\" is not supported",
            ),
            (
                "tier gold",
                "expected an operator after key \"tier\", found 'gold'",
            ),
            ("=gold", "expected a key, found '='"),
            ("tier=gold,", "expected a key, found the end"),
            ("a,,b", "expected a key, found ','"),
            ("tier=gold=x", "expected ',' after a requirement, found '='"),
            ("-tier=x", "\"-tier\" is not a valid label key"),
            (
                "Example.com/tier=x",
                "\"Example.com/tier\" is not a valid label key",
            ),
            ("tier=-gold", "\"-gold\" is not a valid label value"),
            ("!", "expected a key after '!', found the end"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }
}
