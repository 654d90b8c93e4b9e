//! A typed walk over a YAML document that keeps positions: every error names the file,
//! line and column, and the field path (`aws.admin_cidrs[1]`), and an unknown key gets a
//! "did you mean" when it is close to a valid one.
//!
//! Why marked-yaml and not serde: serde_yaml is archived upstream and its successors lose
//! positions in custom validation; marked-yaml (maintained) gives every node its line and
//! column, which is what our error messages need.

use std::path::{Path, PathBuf};
use std::time::Duration;

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{Node, Span};

/// A problem in a stack file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {path}: {message}")]
pub struct StackError {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
    /// `aws.region`, or `(top level)`.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
    /// The other problems found in the same file, independent of this one (each printed as
    /// its own error).
    pub more: Box<[StackError]>,
}

/// (name, value, the position of its key), in file order.
pub type ScalarMap = Vec<(String, String, Span)>;

/// Reads one mapping, remembering which keys were read so that `finish` can refuse the rest.
pub struct Section<'a> {
    file: &'a Path,
    path: String,
    map: &'a MarkedMappingNode,
    /// Where this section's key is, for errors about the section as a whole.
    key_span: Option<&'a Span>,
    known: Vec<&'static str>,
}

fn position(span: &Span) -> (u32, u32) {
    span.start().map(|m| (m.line() as u32, m.column() as u32)).unwrap_or((1, 1))
}

impl<'a> Section<'a> {
    pub fn root(file: &'a Path, map: &'a MarkedMappingNode) -> Section<'a> {
        Section { file, path: String::new(), map, key_span: None, known: Vec::new() }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    pub fn error_at(&self, span: &Span, path: String, message: impl Into<String>) -> StackError {
        let (line, column) = position(span);
        StackError {
            file: self.file.to_path_buf(),
            line,
            column,
            path,
            message: message.into(),
            hint: None,
            more: Box::default(),
        }
    }

    /// An error about the section itself (e.g. a missing key).
    pub fn error(&self, message: impl Into<String>) -> StackError {
        if self.path.is_empty() {
            // The top-level mapping's span starts at its first value, which misleads.
            let message = message.into();
            return StackError {
                file: self.file.to_path_buf(),
                line: 1,
                column: 1,
                path: "(top level)".into(),
                message,
                hint: None,
                more: Box::default(),
            };
        }
        self.error_at(self.key_span.unwrap_or(self.map.span()), self.path.clone(), message)
    }

    /// An error about the value of `key` (at the value when present, else at the section).
    /// An error about item `index` of the list under `key`, at that item.
    pub fn item_error(&self, key: &str, index: usize, message: impl Into<String>, hint: Option<String>) -> StackError {
        let item = match self.map.get_node(key) {
            Some(Node::Sequence(seq)) => seq.get(index).map(|n| n.span()),
            _ => None,
        };
        let mut err = match item {
            Some(span) => self.error_at(span, format!("{}[{index}]", self.child_path(key)), message),
            None => self.value_error(key, message, None),
        };
        err.hint = hint;
        err
    }

    pub fn value_error(&self, key: &str, message: impl Into<String>, hint: Option<String>) -> StackError {
        let span = self.map.get_node(key).map_or(self.key_span.unwrap_or(self.map.span()), |n| n.span());
        let mut err = self.error_at(span, self.child_path(key), message);
        err.hint = hint;
        err
    }

    fn node(&mut self, key: &'static str) -> Option<&'a Node> {
        self.known.push(key);
        self.map.get_node(key)
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.get_node(key).is_some()
    }

    /// Whether `key` is present as a scalar (`backup: false`) rather than a mapping.
    pub fn is_scalar(&self, key: &str) -> bool {
        matches!(self.map.get_node(key), Some(Node::Scalar(_)))
    }

    fn scalar(&mut self, key: &'static str, what: &str) -> Result<Option<(&'a str, &'a Span)>, StackError> {
        let path = self.child_path(key);
        match self.node(key) {
            None => Ok(None),
            Some(Node::Scalar(s)) if s.as_str().is_empty() || s.as_str() == "~" || s.as_str() == "null" => Ok(None),
            Some(Node::Scalar(s)) => Ok(Some((s.as_str(), s.span()))),
            Some(other) => Err(self.error_at(other.span(), path, format!("expected {what}, found a {}", kind(other)))),
        }
    }

    pub fn opt_str(&mut self, key: &'static str) -> Result<Option<String>, StackError> {
        Ok(self.scalar(key, "a string")?.map(|(s, _)| s.to_string()))
    }

    pub fn req_str(&mut self, key: &'static str) -> Result<(String, Span), StackError> {
        match self.scalar(key, "a string")? {
            Some((s, span)) => Ok((s.to_string(), *span)),
            None => Err(self.error(format!("missing required field `{key}`"))),
        }
    }

    /// A value parsed by `parse`, whose error message is reported at the value's position.
    pub fn opt_parsed<T>(
        &mut self,
        key: &'static str,
        what: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, StackError> {
        let path = self.child_path(key);
        match self.scalar(key, what)? {
            None => Ok(None),
            Some((s, span)) => parse(s).map(Some).map_err(|m| self.error_at(span, path, m)),
        }
    }

    pub fn opt_bool(&mut self, key: &'static str) -> Result<Option<bool>, StackError> {
        // YAML 1.2's core schema: true, True, TRUE and their false; and YAML 1.1's yes/on,
        // which older files use.
        self.opt_parsed(key, "true or false", |s| match s {
            "true" | "True" | "TRUE" | "yes" | "on" => Ok(true),
            "false" | "False" | "FALSE" | "no" | "off" => Ok(false),
            other => Err(format!("expected true or false, got {other:?}")),
        })
    }

    pub fn opt_port(&mut self, key: &'static str) -> Result<Option<u16>, StackError> {
        self.opt_parsed(key, "a port number", parse_port)
    }

    pub fn opt_duration(&mut self, key: &'static str) -> Result<Option<Duration>, StackError> {
        self.opt_parsed(key, "a duration", parse_duration)
    }

    /// A list of scalars, each checked by `parse`.
    pub fn opt_list<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, StackError> {
        self.list(key, |this, item, path| match item {
            Node::Scalar(s) => parse(s.as_str()).map_err(|m| this.error_at(s.span(), path, m)),
            other => Err(this.error_at(other.span(), path, format!("expected a string, found a {}", kind(other)))),
        })
    }

    /// The list under `key` (absent or empty: `None`), each item read by `each(self, item,
    /// its path)`.
    fn list<T>(
        &mut self,
        key: &'static str,
        each: impl Fn(&Self, &'a Node, String) -> Result<T, StackError>,
    ) -> Result<Option<Vec<T>>, StackError> {
        let path = self.child_path(key);
        match self.node(key) {
            None => Ok(None),
            Some(Node::Sequence(seq)) => seq
                .iter()
                .enumerate()
                .map(|(i, item)| each(self, item, format!("{path}[{i}]")))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(Node::Scalar(s)) if s.as_str().is_empty() => Ok(None),
            Some(other) => Err(self.error_at(other.span(), path, format!("expected a list, found a {}", kind(other)))),
        }
    }

    /// A mapping of names the stack chooses to scalars (`service.env`): (name, value, the
    /// position of its key), in file order.
    pub fn opt_scalar_map(&mut self, key: &'static str) -> Result<Option<ScalarMap>, StackError> {
        let path = self.child_path(key);
        match self.node(key) {
            None => Ok(None),
            Some(Node::Mapping(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Node::Scalar(s) => Ok((k.as_str().to_string(), s.as_str().to_string(), *k.span())),
                    other => Err(self.error_at(
                        other.span(),
                        format!("{path}.{}", k.as_str()),
                        format!("expected a string, found a {}", kind(other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Node::Scalar(s)) if s.as_str().is_empty() => Ok(None),
            Some(other) => {
                Err(self.error_at(other.span(), path, format!("expected a mapping, found a {}", kind(other))))
            }
        }
    }

    /// A nested mapping, if present.
    pub fn opt_section(&mut self, key: &'static str) -> Result<Option<Section<'a>>, StackError> {
        let path = self.child_path(key);
        match self.node(key) {
            None => Ok(None),
            Some(Node::Mapping(m)) => {
                let key_span = self.map.keys().find(|k| k.as_str() == key).map(|k| k.span());
                Ok(Some(Section { file: self.file, path, map: m, key_span, known: Vec::new() }))
            }
            Some(Node::Scalar(s)) if s.as_str().is_empty() => Ok(None),
            Some(other) => {
                Err(self.error_at(other.span(), path, format!("expected a mapping, found a {}", kind(other))))
            }
        }
    }

    /// A list of mappings (`hosts:`), each read as its own section `key[i]`.
    pub fn opt_sections(&mut self, key: &'static str) -> Result<Option<Vec<Section<'a>>>, StackError> {
        self.list(key, |this, item, path| match item {
            Node::Mapping(m) => {
                Ok(Section { file: this.file, path, map: m, key_span: Some(m.span()), known: Vec::new() })
            }
            other => Err(this.error_at(other.span(), path, format!("expected a mapping, found a {}", kind(other)))),
        })
    }

    /// Refuses every key that was not read, suggesting the closest known one.
    pub fn finish(self) -> Result<(), StackError> {
        self.check_unknown()
    }

    /// Counts `keys` as read: sections whose reading depends on something already found
    /// wrong are not reported as unknown.
    pub fn allow(&mut self, keys: &[&'static str]) {
        self.known.extend_from_slice(keys);
    }

    /// Every field of this section no reader asked for, each as an error with the closest
    /// known name (the first, with the others in its `more`): called before checks that
    /// span fields, so a typo (`admin_cidr`) is reported as a typo and not as the field it
    /// should have been being empty.
    pub fn check_unknown(&self) -> Result<(), StackError> {
        let mut unknown =
            self.map.iter().map(|(key, _)| key).filter(|k| !self.known.contains(&k.as_str())).map(|key| {
                let name = key.as_str();
                let mut err = self.error_at(key.span(), self.child_path(name), format!("unknown field `{name}`"));
                let best = self
                    .known
                    .iter()
                    .map(|k| (strsim::damerau_levenshtein(name, k), *k))
                    .filter(|(d, k)| *d <= 2.max(k.len() / 4))
                    .min();
                err.hint = Some(match best {
                    Some((_, k)) => format!("did you mean `{k}`?"),
                    None => {
                        let mut valid: Vec<&str> = Vec::new();
                        for k in &self.known {
                            if !valid.contains(k) {
                                valid.push(k);
                            }
                        }
                        format!("valid fields here: {}", valid.join(", "))
                    }
                });
                err
            });
        match unknown.next() {
            None => Ok(()),
            Some(mut first) => {
                first.more = unknown.collect::<Vec<_>>().into();
                Err(first)
            }
        }
    }
}

fn kind(node: &Node) -> &'static str {
    match node {
        Node::Scalar(_) => "scalar",
        Node::Mapping(_) => "mapping",
        Node::Sequence(_) => "list",
    }
}

pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!("expected a port between 1 and 65535, got {s:?}")),
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".to_string()),
        Err(_) => Err(format!("expected a duration such as 60s, 5m or 30days, got {s:?}")),
    }
}

/// An IPv4 or IPv6 network in CIDR notation, with no host bits set.
pub fn parse_cidr(s: &str) -> Result<String, String> {
    let bad = || format!("expected a CIDR block such as 203.0.113.7/32, got {s:?}");
    let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
    let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let (bits, max) = match addr {
        std::net::IpAddr::V4(a) => (u32::from(a) as u128, 32),
        std::net::IpAddr::V6(a) => (u128::from(a), 128),
    };
    if prefix > max {
        return Err(format!("prefix /{prefix} is longer than {max} bits in {s:?}"));
    }
    let host_bits = max - prefix;
    // `1 << 128` overflows: `::/0` keeps every bit as a host bit.
    let host_mask = 1u128.checked_shl(u32::from(host_bits)).map_or(u128::MAX, |b| b - 1);
    if bits & host_mask != 0 {
        return Err(format!(
            "{s:?} has host bits set; did you mean the network address with /{prefix}, or /{max} for one host?"
        ));
    }
    // The canonical form (`::/0` for `0::/0`, lower case): what AWS reports back, so the
    // drift check compares like with like.
    Ok(format!("{addr}/{prefix}"))
}

/// Whether a CIDR (as `parse_cidr` returns it) is wider than an admin network should be:
/// a prefix shorter than /8 for IPv4 or /32 for IPv6.
/// The documentation range (RFC 5737, RFC 3849) a canonical CIDR lies in: example
/// addresses, never anyone's network.
pub fn documentation_range(cidr: &str) -> Option<&'static str> {
    let addr = cidr.split_once('/').map_or(cidr, |(a, _)| a);
    match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => match v4.octets() {
            [192, 0, 2, _] => Some("TEST-NET-1 (192.0.2.0/24)"),
            [198, 51, 100, _] => Some("TEST-NET-2 (198.51.100.0/24)"),
            [203, 0, 113, _] => Some("TEST-NET-3 (203.0.113.0/24)"),
            _ => None,
        },
        std::net::IpAddr::V6(v6) => (v6.segments()[..2] == [0x2001, 0x0db8]).then_some("2001:db8::/32"),
    }
}

/// A private network (RFC 1918, RFC 4193): not what AWS sees of a laptop on the internet.
pub fn is_private(cidr: &str) -> bool {
    let addr = cidr.split_once('/').map_or(cidr, |(a, _)| a);
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_private(),
        Ok(std::net::IpAddr::V6(v6)) => (v6.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

pub fn is_too_wide(cidr: &str) -> bool {
    let Some((addr, prefix)) = cidr.split_once('/') else { return false };
    let prefix: u8 = prefix.parse().unwrap_or(u8::MAX);
    if addr.contains(':') { prefix < 32 } else { prefix < 8 }
}

/// The dotted path of the key at `line`:`column` (1-based) of a block-style document: its
/// parents are the nearest lines above it that are less indented. For errors the YAML
/// loader reports with a position only.
fn path_at(text: &str, line: usize, column: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let key = |l: &str| l.trim_start().trim_start_matches("- ").split(':').next().unwrap_or("").trim().to_string();
    let Some(here) = lines.get(line.saturating_sub(1)) else { return String::new() };
    let mut path = vec![key(here)];
    let mut indent = column.saturating_sub(1);
    for l in lines[..line.saturating_sub(1)].iter().rev() {
        let i = l.len() - l.trim_start().len();
        if !l.trim().is_empty() && !l.trim_start().starts_with('#') && i < indent {
            path.push(key(l));
            indent = i;
        }
        if indent == 0 {
            break;
        }
    }
    path.reverse();
    path.join(".")
}

/// Parses a whole document into its top-level section.
pub fn load(file: &Path, text: &str) -> Result<Node, StackError> {
    let options = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
    marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| {
        use marked_yaml::LoadError;
        let top = || "(top level)".to_string();
        let (marker, path, message) = match &e {
            LoadError::TopLevelMustBeMapping(m) => {
                (Some(*m), top(), "a stack file must be a mapping of fields (name:, provider:, ...)".to_string())
            }
            LoadError::DuplicateKey(inner) => {
                let at = inner.key.span().start().copied();
                let path = at.map(|m| path_at(text, m.line(), m.column())).filter(|p| !p.is_empty());
                (at, path.unwrap_or_else(top), format!("duplicate field `{}`", inner.key.as_str()))
            }
            LoadError::ScanError(m, se) => (Some(*m), top(), format!("invalid YAML: {}", se.info())),
            other => (None, top(), format!("invalid YAML: {other}")),
        };
        let (line, column) = marker.map(|m| (m.line() as u32, m.column() as u32)).unwrap_or((1, 1));
        StackError { file: file.to_path_buf(), line, column, path, message, hint: None, more: Box::default() }
    })
}
