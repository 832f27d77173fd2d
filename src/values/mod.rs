//! Value types that both the configuration and the proxy hold: the MCP
//! protocol version, the bearer token, the `Host`/`Origin` allow-lists, the
//! endpoint's public URL and the OAuth resource-server settings.
//!
//! Invariant: this module is a leaf. It imports neither `config` nor `proxy`
//! (nor any HTTP type), so `config → values ← proxy` has no cycle. Each type
//! is validated when it is made, so a holder never re-parses it.

pub mod bearer_token;
pub mod instance_id;
pub mod modern_version;
pub mod oauth_settings;
pub mod origin_rules;
pub mod protocol_version;
pub mod public_url;
pub mod session_key;

pub use bearer_token::{BadToken, BearerToken};
pub use instance_id::{BadInstanceId, InstanceId};
pub use modern_version::{ModernVersion, UnsupportedModernVersion};
pub use oauth_settings::{JwksSource, OAuthSettings};
pub use origin_rules::{AllowedHost, AllowedOrigin, OriginRuleError};
pub use protocol_version::{ProtocolVersion, UnsupportedVersion};
pub use public_url::{BadUrl, PublicUrl};
pub use session_key::{BadSessionKey, SessionKey};
