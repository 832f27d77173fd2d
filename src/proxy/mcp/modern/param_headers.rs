//! `Mcp-Param-{Name}` headers: which arguments of a tool its `inputSchema`
//! asks to be mirrored into headers (`x-mcp-header` annotations), and the
//! check of a modern `tools/call`'s headers against its arguments
//! (2026-07-28, basic/transports/streamable-http, "Custom Headers from Tool
//! Parameters").
//!
//! Invariant: a tool's rules are either every valid annotation of its schema
//! or [`ToolRules::Invalid`] — never a subset — and the check compares only
//! what the rules name: an `Mcp-Param-*` header no annotation names is
//! forwarded and otherwise ignored, as the specification asks. A refusal is
//! -32020 (HeaderMismatch) with HTTP 400.

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::validate::ModernError;
use crate::proxy::transport::routing_headers::{self, PARAM_PREFIX};

/// The schema annotation that names a header.
pub(crate) const ANNOTATION: &str = "x-mcp-header";

/// JSON Schema 2020-12 keywords whose value is one subschema, a list of
/// them, or a map of them. Crossing any of them leaves the chain of
/// `properties` keys: an annotation below is not statically reachable.
const SUBSCHEMA_ONE: [&str; 11] = [
    "items",
    "contains",
    "unevaluatedItems",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
];
const SUBSCHEMA_LIST: [&str; 4] = ["allOf", "anyOf", "oneOf", "prefixItems"];
const SUBSCHEMA_MAP: [&str; 4] = [
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
];

/// Schema positions visited per tool: a schema larger than this is not
/// searched further and the tool's rules are [`ToolRules::Invalid`]
/// (conforming clients then drop the tool; nothing is checked for it).
const MAX_POSITIONS: usize = 10_000;

/// The primitive type of an annotated argument (`number` is not allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamType {
    String,
    Integer,
    Boolean,
}

/// One annotated argument: where it sits in `arguments` and its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamHeader {
    /// The chain of `properties` keys from the schema root.
    pub(crate) path: Vec<String>,
    /// The annotation's value: the header is `Mcp-Param-{token}`.
    pub(crate) token: String,
    pub(crate) kind: ParamType,
}

/// What a tool's schema asks of a modern `tools/call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolRules {
    /// The headers to check (empty: none).
    Headers(Arc<[ParamHeader]>),
    /// An annotation breaks the specification's constraints. Clients must
    /// drop such a tool from their list and send it no headers, so none is
    /// checked (as the Python SDK 2.x server does); the reason is logged.
    Invalid(String),
}

impl ToolRules {
    /// No header to check.
    pub(crate) fn none() -> Self {
        ToolRules::Headers(Arc::from(Vec::new()))
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The rules of a tool whose `inputSchema` is `schema`.
pub(crate) fn rules_of(schema: &Value) -> ToolRules {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    // (the chain of `properties` keys, or None once off it; the position)
    let mut stack: Vec<(Option<Vec<String>>, &Value)> = vec![(Some(Vec::new()), schema)];
    let mut visited = 0usize;
    while let Some((path, node)) = stack.pop() {
        let Value::Object(position) = node else {
            continue;
        };
        visited += 1;
        if visited > MAX_POSITIONS {
            return ToolRules::Invalid(format!(
                "the inputSchema has more than {MAX_POSITIONS} schema positions"
            ));
        }
        if let Some(annotation) = position.get(ANNOTATION) {
            match annotated(path.as_deref(), annotation, position, &mut seen) {
                Ok(header) => found.push(header),
                Err(reason) => return ToolRules::Invalid(reason),
            }
        }
        push_children(&mut stack, path.as_ref(), position);
    }
    // Declaration order does not matter; a stable order keeps refusals stable.
    found.sort_by(|a, b| a.path.cmp(&b.path));
    ToolRules::Headers(Arc::from(found))
}

fn push_children<'a>(
    stack: &mut Vec<(Option<Vec<String>>, &'a Value)>,
    path: Option<&Vec<String>>,
    position: &'a Map<String, Value>,
) {
    for (keyword, value) in position {
        let keyword = keyword.as_str();
        if keyword == "properties"
            && let Value::Object(properties) = value
        {
            for (name, sub) in properties {
                let chain = path.map(|p| {
                    let mut p = p.clone();
                    p.push(name.clone());
                    p
                });
                stack.push((chain, sub));
            }
        } else if SUBSCHEMA_ONE.contains(&keyword) {
            stack.push((None, value));
        } else if SUBSCHEMA_LIST.contains(&keyword) {
            if let Value::Array(list) = value {
                stack.extend(list.iter().map(|sub| (None, sub)));
            }
        } else if SUBSCHEMA_MAP.contains(&keyword)
            && let Value::Object(map) = value
        {
            stack.extend(map.values().map(|sub| (None, sub)));
        }
    }
}

/// One annotation checked against the specification's constraints.
fn annotated(
    path: Option<&[String]>,
    annotation: &Value,
    position: &Map<String, Value>,
    seen: &mut HashSet<String>,
) -> Result<ParamHeader, String> {
    let path = match path {
        Some(p) if !p.is_empty() => p,
        _ => {
            return Err(format!(
                "{ANNOTATION} at a schema position not reachable through `properties` keys alone"
            ));
        }
    };
    let at = path.join(".");
    let Value::String(token) = annotation else {
        return Err(format!("property {at:?}: {ANNOTATION} must be a string"));
    };
    if token.is_empty() || !token.bytes().all(is_tchar) {
        return Err(format!(
            "property {at:?}: {ANNOTATION} {token:?} is not an HTTP field-name token"
        ));
    }
    let kind = match position.get("type").and_then(Value::as_str) {
        Some("string") => ParamType::String,
        Some("integer") => ParamType::Integer,
        Some("boolean") => ParamType::Boolean,
        other => {
            return Err(format!(
                "property {at:?}: {ANNOTATION} is allowed on string, integer and boolean properties only (type {other:?})"
            ));
        }
    };
    if !seen.insert(token.to_ascii_lowercase()) {
        return Err(format!(
            "property {at:?}: {ANNOTATION} {token:?} is used twice (names compare case-insensitively)"
        ));
    }
    Ok(ParamHeader {
        path: path.to_vec(),
        token: token.clone(),
        kind,
    })
}

/// The argument at `path`, if every step is an object that has it.
fn value_at<'a>(arguments: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(arguments, |node, key| node.as_object()?.get(key))
}

/// How a client renders an argument into its header (before encoding);
/// `None`: it has no rendering (an object, an array), so a conforming client
/// sends no header for it.
fn rendered(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The specification's SHOULD for integers: compare numerically (`42.0`
/// matches `42`), for plain decimal header values.
fn same_integer(body: &Value, header: &str) -> bool {
    let whole = match body {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i128::from(i),
            (None, Some(u), _) => i128::from(u),
            #[allow(
                clippy::cast_possible_truncation,
                reason = "checked: integral and within ±2^63"
            )]
            (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => f as i128,
            _ => return false,
        },
        _ => return false,
    };
    let (int_part, fraction) = header.split_once('.').unwrap_or((header, ""));
    let digits = int_part.strip_prefix('-').unwrap_or(int_part);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b == b'0')
        || (header.contains('.') && fraction.is_empty())
    {
        return false;
    }
    int_part.parse::<i128>().is_ok_and(|h| h == whole)
}

fn mismatch(message: String) -> ModernError {
    ModernError::header_mismatch(format!("Header mismatch: {message}"))
}

/// Checks the `Mcp-Param-*` headers a tool's rules name against the call's
/// `arguments`: each present together with its argument and equal to it
/// after decoding, or absent together (`null` counts as absent).
pub(crate) fn check(
    rules: &[ParamHeader],
    arguments: Option<&Value>,
    headers: &HeaderMap,
) -> Result<(), ModernError> {
    let empty = Value::Object(Map::new());
    let arguments = arguments.unwrap_or(&empty);
    for rule in rules {
        let name = format!("{PARAM_PREFIX}{}", rule.token);
        let header = routing_headers::read_param(headers, &rule.token)
            .map_err(|f| mismatch(f.to_string()))?;
        let argument = rule.path.join(".");
        let value = value_at(arguments, &rule.path).filter(|v| !v.is_null());
        let (value, header) = match (value, header.as_deref()) {
            (Some(value), Some(header)) => (value, header),
            // Absent together, or a value a conforming client sends no
            // header for (an object, an array).
            (None, None) => continue,
            (Some(value), None) if rendered(value).is_none() => continue,
            (Some(_), None) => {
                return Err(mismatch(format!(
                    "the {name} header is required: the body's argument {argument:?} is present"
                )));
            }
            (None, Some(_)) => {
                return Err(mismatch(format!(
                    "the {name} header is present but the body's argument {argument:?} is absent"
                )));
            }
        };
        let equal = match rendered(value) {
            None => false,
            Some(text) if text == header => true,
            Some(_) => rule.kind == ParamType::Integer && same_integer(value, header),
        };
        if !equal {
            return Err(mismatch(format!(
                "the {name} header does not match the body's argument {argument:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn headers_of(rules: ToolRules) -> Arc<[ParamHeader]> {
        match rules {
            ToolRules::Headers(h) => h,
            ToolRules::Invalid(why) => panic!("invalid: {why}"),
        }
    }

    fn invalid(schema: Value) -> String {
        match rules_of(&schema) {
            ToolRules::Invalid(why) => why,
            ToolRules::Headers(h) => panic!("valid: {h:?}"),
        }
    }

    fn region_and_count() -> Arc<[ParamHeader]> {
        headers_of(rules_of(&json!({
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "count": {"type": "integer", "x-mcp-header": "Count"},
                "ctx": {"type": "object", "properties": {
                    "dry": {"type": "boolean", "x-mcp-header": "Dry-Run"}
                }},
                "query": {"type": "string"}
            }
        })))
    }

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    fn code(r: Result<(), ModernError>) -> (i64, u16) {
        let e = r.unwrap_err();
        (e.error.code, e.status.as_u16())
    }

    #[test]
    fn annotations_reachable_through_properties_become_rules() {
        let rules = region_and_count();
        let found: Vec<(String, &str, ParamType)> = rules
            .iter()
            .map(|r| (r.path.join("."), r.token.as_str(), r.kind))
            .collect();
        assert_eq!(
            found,
            vec![
                ("count".into(), "Count", ParamType::Integer),
                ("ctx.dry".into(), "Dry-Run", ParamType::Boolean),
                ("region".into(), "Region", ParamType::String),
            ]
        );
        // Instance data that merely looks like an annotation is not one.
        let rules = rules_of(&json!({"type": "object", "properties": {
            "a": {"type": "string", "default": {"x-mcp-header": "X"}, "examples": [{"x-mcp-header": "Y"}]}
        }}));
        assert_eq!(rules, ToolRules::none());
        assert_eq!(rules_of(&json!({})), ToolRules::none());
    }

    #[test]
    fn annotations_that_break_the_constraints_make_the_tool_invalid() {
        let prop = |p: Value| json!({"type": "object", "properties": {"a": p}});
        assert!(invalid(prop(json!({"type": "string", "x-mcp-header": ""}))).contains("token"));
        assert!(invalid(prop(json!({"type": "string", "x-mcp-header": "A B"}))).contains("token"));
        assert!(invalid(prop(json!({"type": "string", "x-mcp-header": "A:B"}))).contains("token"));
        assert!(invalid(prop(json!({"type": "string", "x-mcp-header": "Ré"}))).contains("token"));
        assert!(invalid(prop(json!({"type": "string", "x-mcp-header": 7}))).contains("string"));
        assert!(invalid(prop(json!({"type": "number", "x-mcp-header": "N"}))).contains("type"));
        assert!(invalid(prop(json!({"type": "object", "x-mcp-header": "O"}))).contains("type"));
        assert!(invalid(prop(json!({"x-mcp-header": "U"}))).contains("type"));
        // Case-insensitively unique.
        assert!(
            invalid(json!({"type": "object", "properties": {
                "a": {"type": "string", "x-mcp-header": "Region"},
                "b": {"type": "string", "x-mcp-header": "REGION"}
            }}))
            .contains("twice")
        );
        // Not statically reachable: under items, a composition, $defs, or the root itself.
        for schema in [
            json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string", "x-mcp-header": "I"}}}}),
            json!({"type": "object", "anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}),
            json!({"type": "object", "$defs": {"d": {"type": "string", "x-mcp-header": "D"}}}),
            json!({"type": "string", "x-mcp-header": "Root"}),
        ] {
            assert!(invalid(schema).contains("reachable"));
        }
    }

    #[test]
    fn matching_headers_pass_in_plain_and_base64_forms() {
        let rules = region_and_count();
        let args = json!({"region": "us-west1", "count": 42, "ctx": {"dry": true}});
        let ok = h(&[
            ("mcp-param-region", "us-west1"),
            ("MCP-PARAM-COUNT", "42"),
            ("Mcp-Param-Dry-Run", "true"),
        ]);
        assert!(check(&rules, Some(&args), &ok).is_ok());
        let b64 = h(&[
            ("mcp-param-region", "=?base64?dXMtd2VzdDE=?="),
            ("mcp-param-count", "42.0"),
            ("mcp-param-dry-run", "true"),
        ]);
        assert!(check(&rules, Some(&args), &b64).is_ok());
        // The spec's non-ASCII example.
        let greeting = json!({"region": "Hello, 世界"});
        let encoded = h(&[("mcp-param-region", "=?base64?SGVsbG8sIOS4lueVjA==?=")]);
        assert!(check(&rules, Some(&greeting), &encoded).is_ok());
        // An integer argument sent as 42.0 in the body.
        let float_body = json!({"count": 42.0});
        assert!(check(&rules, Some(&float_body), &h(&[("mcp-param-count", "42")])).is_ok());
        // Absent and null arguments need no header; headers nobody annotated are ignored.
        let none = json!({"region": null, "query": "select 1"});
        assert!(check(&rules, Some(&none), &h(&[("mcp-param-other", "x")])).is_ok());
        assert!(check(&rules, None, &HeaderMap::new()).is_ok());
    }

    #[test]
    fn missing_extra_different_and_malformed_headers_are_32020_400() {
        let rules = region_and_count();
        let args = json!({"region": "us-west1"});
        // The value is in the body, the header is not.
        let e = check(&rules, Some(&args), &HeaderMap::new()).unwrap_err();
        assert_eq!((e.error.code, e.status.as_u16()), (-32020, 400));
        assert!(
            e.error.message.contains("Mcp-Param-Region"),
            "{}",
            e.error.message
        );
        // Different values; values are case-sensitive.
        assert_eq!(
            code(check(
                &rules,
                Some(&args),
                &h(&[("mcp-param-region", "US-WEST1")])
            )),
            (-32020, 400)
        );
        // A header for an argument the body does not carry.
        assert_eq!(
            code(check(
                &rules,
                Some(&json!({})),
                &h(&[("mcp-param-region", "x")])
            )),
            (-32020, 400)
        );
        // A header for an argument with no rendering.
        assert_eq!(
            code(check(
                &rules,
                Some(&json!({"region": {"a": 1}})),
                &h(&[("mcp-param-region", "x")])
            )),
            (-32020, 400)
        );
        assert!(
            check(
                &rules,
                Some(&json!({"region": {"a": 1}})),
                &HeaderMap::new()
            )
            .is_ok()
        );
        // Malformed Base64, bad characters, a repeated header.
        let hello = json!({"region": "Hello"});
        for bad in ["=?base64?SGVsbG8?=", "=?base64?SGVs!!!bG8=?="] {
            let mut map = HeaderMap::new();
            map.insert("mcp-param-region", HeaderValue::from_static(bad));
            assert_eq!(
                code(check(&rules, Some(&hello), &map)),
                (-32020, 400),
                "{bad}"
            );
        }
        let mut map = HeaderMap::new();
        map.insert(
            "mcp-param-region",
            HeaderValue::from_bytes("Héllo".as_bytes()).unwrap(),
        );
        assert_eq!(
            code(check(&rules, Some(&json!({"region": "Héllo"})), &map)),
            (-32020, 400)
        );
        let twice = h(&[("mcp-param-region", "Hello"), ("mcp-param-region", "Hello")]);
        assert_eq!(code(check(&rules, Some(&hello), &twice)), (-32020, 400));
        // Integers: numeric, but not loose.
        for (header, ok) in [
            ("42", true),
            ("042", true),
            ("42.00", true),
            ("42.5", false),
            ("4.2e1", false),
            ("42.", false),
            ("x", false),
        ] {
            let mut map = HeaderMap::new();
            map.insert("mcp-param-count", HeaderValue::from_static(header));
            assert_eq!(
                check(&rules, Some(&json!({"count": 42})), &map).is_ok(),
                ok,
                "{header}"
            );
        }
        // A boolean renders lowercase.
        let dry = json!({"ctx": {"dry": false}});
        assert!(check(&rules, Some(&dry), &h(&[("mcp-param-dry-run", "False")])).is_err());
        assert!(check(&rules, Some(&dry), &h(&[("mcp-param-dry-run", "false")])).is_ok());
    }
}
