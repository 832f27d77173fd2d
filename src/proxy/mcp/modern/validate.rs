//! Validation of a modern request before any process is touched: the
//! required `_meta` keys, header/body agreement, the protocol version, and
//! the optional log level. Order as in the Python SDK 2.x
//! (`classify_inbound_request`): `_meta` (-32602), headers (-32020),
//! version (-32022).
//!
//! Invariant: a [`ModernRequest`] exists only for a request that passed every
//! check; each refusal is a [`ModernError`] carrying the code and HTTP status
//! the 2026-07-28 specification gives it.

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::code;
use super::era::META_PROTOCOL_VERSION;
use crate::jsonrpc::{ErrorObject, Id};
use crate::proxy::transport::routing_headers::{self, HeaderFault};
use crate::values::ModernVersion;

/// `_meta` key: the client's capabilities for this request only.
pub(crate) const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key: the lowest log level the client wants on this request's stream.
pub(crate) const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// Prefix of the `_meta` keys the protocol reserves.
pub(crate) const META_PREFIX: &str = "io.modelcontextprotocol/";

/// A refusal, with the HTTP status it is answered with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModernError {
    pub(crate) status: StatusCode,
    pub(crate) error: ErrorObject,
}

impl ModernError {
    pub(crate) fn invalid_params(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: ErrorObject::new(crate::jsonrpc::code::INVALID_PARAMS, message),
        }
    }

    pub(crate) fn header_mismatch(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: ErrorObject::new(code::HEADER_MISMATCH, message),
        }
    }

    pub(crate) fn unsupported_version(requested: &str) -> Self {
        let supported = ModernVersion::supported_strs();
        Self {
            status: StatusCode::BAD_REQUEST,
            error: ErrorObject::new(
                code::UNSUPPORTED_PROTOCOL_VERSION,
                format!(
                    "Unsupported protocol version {requested:?} (supported: {})",
                    supported.join(", ")
                ),
            )
            .with_data(json!({"supported": supported, "requested": requested})),
        }
    }

    pub(crate) fn method_not_found(method: &str, why: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: ErrorObject::method_not_found(method).with_data(Value::String(why.into())),
        }
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: ErrorObject::new(crate::jsonrpc::code::INVALID_REQUEST, message),
        }
    }
}

/// Log levels of `notifications/message`, least severe first (RFC 5424 order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    pub(crate) fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            "alert" => LogLevel::Alert,
            "emergency" => LogLevel::Emergency,
            _ => return None,
        })
    }
}

/// A modern request that passed validation.
#[derive(Debug, Clone)]
pub(crate) struct ModernRequest {
    pub(crate) id: Id,
    pub(crate) method: String,
    /// As sent, `_meta` included.
    pub(crate) params: Option<Value>,
    #[allow(
        dead_code,
        reason = "one version today; kept so a second revision is answered per version"
    )]
    pub(crate) version: ModernVersion,
    /// What the client declared for this request (`{}` = nothing).
    pub(crate) client_capabilities: Map<String, Value>,
    /// `None`: no log messages on this request's stream.
    pub(crate) log_level: Option<LogLevel>,
}

impl ModernRequest {
    /// The params to send to a 2025 server: the protocol's own `_meta` keys
    /// removed (they describe the client to the proxy; the process was
    /// initialized by the pool), everything else — `progressToken`,
    /// arguments — unchanged.
    pub(crate) fn upstream_params(&self) -> Option<Value> {
        let mut params = self.params.clone()?;
        if let Some(Value::Object(meta)) = params.get_mut("_meta") {
            meta.retain(|k, _| !k.starts_with(META_PREFIX));
            if meta.is_empty()
                && let Some(p) = params.as_object_mut()
            {
                p.remove("_meta");
            }
        }
        Some(params)
    }

    /// The request's progress token, if it asked for progress.
    pub(crate) fn has_progress_token(&self) -> bool {
        self.params
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get("progressToken"))
            .is_some()
    }
}

/// Which body field `Mcp-Name` mirrors for `method`, if any.
fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

fn fault(f: HeaderFault) -> ModernError {
    ModernError::header_mismatch(format!("Header mismatch: {f}"))
}

/// Checks a modern request (see the module docs for the order).
pub(crate) fn validate(
    headers: &HeaderMap,
    id: Id,
    method: String,
    params: Option<Value>,
) -> Result<ModernRequest, ModernError> {
    // 1. The required `_meta` keys.
    let meta = params
        .as_ref()
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object);
    let Some(meta) = meta else {
        return Err(ModernError::invalid_params(format!(
            "Invalid params: a request of protocol version 2026-07-28 or later must carry params._meta with {META_PROTOCOL_VERSION:?} and {META_CLIENT_CAPABILITIES:?}"
        )));
    };
    let Some(body_version) = meta.get(META_PROTOCOL_VERSION).and_then(Value::as_str) else {
        return Err(ModernError::invalid_params(format!(
            "Invalid params: _meta[{META_PROTOCOL_VERSION:?}] must be a string"
        )));
    };
    let Some(client_capabilities) = meta
        .get(META_CLIENT_CAPABILITIES)
        .and_then(Value::as_object)
    else {
        return Err(ModernError::invalid_params(format!(
            "Invalid params: _meta[{META_CLIENT_CAPABILITIES:?}] must be an object ({{}} when the client has none)"
        )));
    };
    let log_level = match meta.get(META_LOG_LEVEL) {
        None => None,
        Some(v) => Some(v.as_str().and_then(LogLevel::parse).ok_or_else(|| {
            ModernError::invalid_params(format!(
                "Invalid params: _meta[{META_LOG_LEVEL:?}] must be a log level (debug … emergency)"
            ))
        })?),
    };

    // 2. The headers agree with the body.
    let header_version = routing_headers::read(headers, routing_headers::PROTOCOL_VERSION)
        .map_err(fault)?
        .ok_or_else(|| {
            ModernError::header_mismatch(
                "Header mismatch: the MCP-Protocol-Version header is required",
            )
        })?;
    if header_version != body_version {
        return Err(ModernError::header_mismatch(format!(
            "Header mismatch: MCP-Protocol-Version header value {header_version:?} does not match body value {body_version:?}"
        )));
    }
    let header_method = routing_headers::read(headers, routing_headers::METHOD)
        .map_err(fault)?
        .ok_or_else(|| {
            ModernError::header_mismatch("Header mismatch: the Mcp-Method header is required")
        })?;
    if header_method != method {
        return Err(ModernError::header_mismatch(format!(
            "Header mismatch: Mcp-Method header value {header_method:?} does not match body value {method:?}"
        )));
    }
    if let Some(field) = name_field(&method) {
        let body_name = params
            .as_ref()
            .and_then(|p| p.get(field))
            .and_then(Value::as_str);
        let header_name = routing_headers::read(headers, routing_headers::NAME).map_err(fault)?;
        match (header_name, body_name) {
            (None, _) => {
                return Err(ModernError::header_mismatch(format!(
                    "Header mismatch: the Mcp-Name header is required for {method}"
                )));
            }
            (Some(h), Some(b)) if h == b => {}
            (Some(h), b) => {
                return Err(ModernError::header_mismatch(format!(
                    "Header mismatch: Mcp-Name header value {h:?} does not match body value {:?}",
                    b.unwrap_or_default()
                )));
            }
        }
    }

    // 3. A version this proxy serves.
    let version: ModernVersion = body_version
        .parse()
        .map_err(|_| ModernError::unsupported_version(body_version))?;

    let client_capabilities = client_capabilities.clone();
    Ok(ModernRequest {
        id,
        method,
        params,
        version,
        client_capabilities,
        log_level,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn meta(version: &str) -> Value {
        json!({
            "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {}
        })
    }

    fn call_params(version: &str) -> Option<Value> {
        Some(json!({"name": "echo", "arguments": {}, "_meta": meta(version)}))
    }

    const GOOD: [(&str, &str); 3] = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];

    fn check(
        h: &[(&'static str, &'static str)],
        params: Option<Value>,
    ) -> Result<ModernRequest, ModernError> {
        validate(
            &headers(h),
            Id::Number(1.into()),
            "tools/call".into(),
            params,
        )
    }

    fn code_of(r: Result<ModernRequest, ModernError>) -> (i64, u16) {
        let e = r.unwrap_err();
        (e.error.code, e.status.as_u16())
    }

    #[test]
    fn a_complete_request_passes_and_keeps_its_log_level() {
        let mut p = call_params("2026-07-28").unwrap();
        p["_meta"]["io.modelcontextprotocol/logLevel"] = json!("warning");
        let r = check(&GOOD, Some(p)).unwrap();
        assert_eq!(r.log_level, Some(LogLevel::Warning));
        assert_eq!(r.version, ModernVersion::V2026_07_28);
    }

    #[test]
    fn missing_meta_keys_are_invalid_params_400() {
        assert_eq!(code_of(check(&GOOD, None)), (-32602, 400));
        assert_eq!(
            code_of(check(
                &GOOD,
                Some(
                    json!({"name": "echo", "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}})
                )
            )),
            (-32602, 400)
        );
        assert_eq!(
            code_of(check(
                &GOOD,
                Some(
                    json!({"name": "echo", "_meta": {"io.modelcontextprotocol/clientCapabilities": {}}})
                )
            )),
            (-32602, 400)
        );
        let mut p = call_params("2026-07-28").unwrap();
        p["_meta"]["io.modelcontextprotocol/logLevel"] = json!("loud");
        assert_eq!(code_of(check(&GOOD, Some(p))), (-32602, 400));
    }

    #[test]
    fn header_disagreements_are_header_mismatch_400() {
        let p = || call_params("2026-07-28");
        // Missing each required header in turn.
        assert_eq!(code_of(check(&GOOD[1..], p())), (-32020, 400));
        assert_eq!(code_of(check(&[GOOD[0], GOOD[2]], p())), (-32020, 400));
        assert_eq!(code_of(check(&GOOD[..2], p())), (-32020, 400));
        // Mismatched values.
        assert_eq!(
            code_of(check(
                &[GOOD[0], ("mcp-method", "tools/list"), GOOD[2]],
                p()
            )),
            (-32020, 400)
        );
        assert_eq!(
            code_of(check(&[GOOD[0], GOOD[1], ("mcp-name", "other")], p())),
            (-32020, 400)
        );
        assert_eq!(
            code_of(check(
                &[("mcp-protocol-version", "2025-11-25"), GOOD[1], GOOD[2]],
                p()
            )),
            (-32020, 400)
        );
        // Repeated routing header.
        assert_eq!(
            code_of(check(&[GOOD[0], GOOD[1], GOOD[1], GOOD[2]], p())),
            (-32020, 400)
        );
        // Header 2026, body v999: a mismatch, not an unsupported version.
        assert_eq!(
            code_of(check(&GOOD, call_params("v999.0.0"))),
            (-32020, 400)
        );
    }

    #[test]
    fn a_base64_name_is_decoded_before_comparing() {
        let params = Some(json!({"name": "Hello, 世界", "_meta": meta("2026-07-28")}));
        let h = [
            GOOD[0],
            GOOD[1],
            ("mcp-name", "=?base64?SGVsbG8sIOS4lueVjA==?="),
        ];
        assert!(check(&h, params).is_ok());
    }

    #[test]
    fn an_unsupported_version_is_32022_with_the_supported_list() {
        let h = [("mcp-protocol-version", "v999.0.0"), GOOD[1], GOOD[2]];
        let e = check(&h, call_params("v999.0.0")).unwrap_err();
        assert_eq!((e.error.code, e.status.as_u16()), (-32022, 400));
        assert_eq!(
            e.error.data,
            Some(json!({"supported": ["2026-07-28"], "requested": "v999.0.0"}))
        );
    }

    #[test]
    fn upstream_params_drop_only_the_protocols_meta_keys() {
        let mut p = call_params("2026-07-28").unwrap();
        p["_meta"]["progressToken"] = json!(7);
        let r = check(&GOOD, Some(p)).unwrap();
        assert_eq!(
            r.upstream_params().unwrap(),
            json!({"name": "echo", "arguments": {}, "_meta": {"progressToken": 7}})
        );
        let r = check(&GOOD, call_params("2026-07-28")).unwrap();
        assert_eq!(
            r.upstream_params().unwrap(),
            json!({"name": "echo", "arguments": {}})
        );
    }
}
