//! `GET /openapi.json` (generated from the handlers' annotations) and `GET /docs`, a
//! readable page rendered from that same document on the server: no JavaScript, no CDN.

use std::fmt::Write;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "VehicleConnect API",
        description = "Vehicle apps and gateways post API events here; the service stores them durably and serves KPIs, Prometheus metrics and a dashboard."
    ),
    paths(
        super::events::post_events,
        super::kpis::get_kpis,
        super::aggregates::get_aggregates,
        super::status::get_status,
        super::get_metrics,
    ),
    components(schemas(
        crate::ingest::event::EventInput,
        crate::ingest::event::FieldError,
        super::events::Created,
        super::events::Accepted,
        super::events::EventsAnswer,
        super::error::ErrorBody,
        crate::kpi::KpiReport,
        crate::kpi::Figures,
        crate::kpi::EndpointFigures,
        crate::kpi::SeriesPoint,
        crate::kpi::Window,
        crate::kpi::RegionRead,
        super::kpis::Scope,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "events", description = "Recording vehicle API events"),
        (name = "analytics", description = "KPIs computed from the events"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The ingest token, required when the service runs with --ingest-token"))
                    .build(),
            ),
        );
    }
}

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = crate::build::VERSION.to_string();
        serde_json::to_value(doc).expect("the OpenAPI document serialises")
    })
}

pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], spec().to_string())
}

pub async fn docs_page() -> Html<&'static str> {
    static PAGE: OnceLock<String> = OnceLock::new();
    Html(PAGE.get_or_init(|| render(spec())))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Inline `code` spans of the annotations' Markdown, after escaping.
fn text(s: &str) -> String {
    let escaped = esc(s);
    let mut out = String::new();
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

/// `Type` of a schema: a reference's name, `array of T`, or the JSON type and format.
fn type_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{name}\">{name}</a>");
    }
    if let Some(items) = schema.get("items") {
        return format!("array of {}", type_name(items));
    }
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        let names: Vec<String> = variants.iter().map(type_name).filter(|t| t != "null").collect();
        return names.join(" or ");
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let v: Vec<String> = values.iter().map(|v| format!("<code>{}</code>", esc(&v.to_string()))).collect();
        return format!("one of {}", v.join(", "));
    }
    let ty = match schema.get("type") {
        Some(Value::Array(types)) => {
            types.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect::<Vec<_>>().join(" or ")
        }
        Some(Value::String(t)) => t.clone(),
        _ => "any".to_string(),
    };
    match schema.get("format").and_then(Value::as_str) {
        Some(f) => format!("{ty} ({f})"),
        None => ty,
    }
}

fn render(spec: &Value) -> String {
    let mut h = String::new();
    let title = spec["info"]["title"].as_str().unwrap_or("API");
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{t} — reference</title><style>\
:root{{color-scheme:light dark;--muted:#6b7280;--line:#d1d5db}}\
body{{font:15px/1.5 system-ui,sans-serif;max-width:62rem;margin:0 auto;padding:1rem 1.25rem}}\
code,pre{{font:13px ui-monospace,monospace}}pre{{background:rgba(127,127,127,.12);padding:.75rem;overflow-x:auto;border-radius:6px}}\
table{{border-collapse:collapse;width:100%;margin:.5rem 0}}td,th{{border-bottom:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}}\
.op{{border:1px solid var(--line);border-radius:8px;padding:.25rem 1rem 1rem;margin:1rem 0}}\
.m{{font-weight:700;font-family:ui-monospace,monospace;padding:.1rem .4rem;border-radius:4px;background:#2563eb;color:#fff}}\
.m.get{{background:#059669}}.muted{{color:var(--muted)}}a{{color:#2563eb}}\
</style></head><body><h1>{t} <span class=\"muted\">{v}</span></h1><p>{d}</p>\
<p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI {o}).</p>",
        t = esc(title),
        v = esc(spec["info"]["version"].as_str().unwrap_or("")),
        d = text(spec["info"]["description"].as_str().unwrap_or("")),
        o = esc(spec["openapi"].as_str().unwrap_or("3")),
    );
    h.push_str("<h2>Endpoints</h2>");
    if let Some(paths) = spec["paths"].as_object() {
        for (path, ops) in paths {
            let Some(ops) = ops.as_object() else { continue };
            for (method, op) in ops {
                render_operation(&mut h, path, method, op);
            }
        }
    }
    h.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = spec["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            let _ = write!(h, "<h3 id=\"schema-{n}\">{n}</h3>", n = esc(name));
            if let Some(d) = schema.get("description").and_then(Value::as_str) {
                let _ = write!(h, "<p>{}</p>", text(d));
            }
            render_properties(&mut h, schema);
            if let Some(example) = schema.get("example") {
                let _ = write!(
                    h,
                    "<p>Example:</p><pre>{}</pre>",
                    esc(&serde_json::to_string_pretty(example).unwrap_or_default())
                );
            }
        }
    }
    h.push_str("</body></html>");
    h
}

fn render_operation(h: &mut String, path: &str, method: &str, op: &Value) {
    let _ = write!(
        h,
        "<section class=\"op\"><h3><span class=\"m {m}\">{M}</span> <code>{p}</code></h3>",
        m = esc(method),
        M = esc(&method.to_uppercase()),
        p = esc(path)
    );
    if let Some(s) = op.get("summary").and_then(Value::as_str) {
        let _ = write!(h, "<p><strong>{}</strong></p>", text(s));
    }
    if let Some(d) = op.get("description").and_then(Value::as_str) {
        let _ = write!(h, "<p>{}</p>", text(d));
    }
    if let Some(params) = op.get("parameters").and_then(Value::as_array) {
        h.push_str("<table><tr><th>Parameter</th><th>In</th><th>Type</th><th>Description</th></tr>");
        for p in params {
            let _ = write!(
                h,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                if p["required"].as_bool() == Some(true) { " (required)" } else { "" },
                esc(p["in"].as_str().unwrap_or("")),
                type_name(&p["schema"]),
                text(p["description"].as_str().unwrap_or(""))
            );
        }
        h.push_str("</table>");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        h.push_str("<p>Request body:</p><ul>");
        for (media, c) in content {
            let _ = write!(h, "<li><code>{}</code>: {}</li>", esc(media), type_name(&c["schema"]));
        }
        h.push_str("</ul>");
    }
    if let Some(responses) = op["responses"].as_object() {
        h.push_str("<table><tr><th>Status</th><th>Meaning</th><th>Body</th></tr>");
        for (code, r) in responses {
            let body = r["content"]
                .as_object()
                .and_then(|c| c.values().next())
                .map(|c| type_name(&c["schema"]))
                .unwrap_or_default();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(code),
                text(r["description"].as_str().unwrap_or("")),
                body
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");
}

fn render_properties(h: &mut String, schema: &Value) {
    let parts: Vec<&Value> = match schema.get("allOf").and_then(Value::as_array) {
        Some(all) => all.iter().collect(),
        None => vec![schema],
    };
    let mut rows = String::new();
    for part in parts {
        if part.get("$ref").is_some() {
            let _ = write!(rows, "<tr><td colspan=\"3\">all fields of {}</td></tr>", type_name(part));
            continue;
        }
        let required: Vec<&str> =
            part["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if let Some(props) = part["properties"].as_object() {
            for (name, p) in props {
                let _ = write!(
                    rows,
                    "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(name),
                    if required.contains(&name.as_str()) { "" } else { " <span class=\"muted\">optional</span>" },
                    type_name(p),
                    text(p["description"].as_str().unwrap_or(""))
                );
            }
        }
    }
    if rows.is_empty() {
        let _ = write!(h, "<p>Type: {}</p>", type_name(schema));
    } else {
        let _ = write!(h, "<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>{rows}</table>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_documents_every_route_and_the_page_renders_it() {
        let spec = spec();
        for path in ["/api/events", "/api/analytics/kpis", "/api/status", "/metrics"] {
            assert!(spec["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
        }
        assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
        let page = render(spec);
        assert!(page.contains("<code>/api/events</code>"));
        assert!(page.contains("id=\"schema-Figures\""));
        assert!(page.contains("<code>response_time_ms</code>"));
    }
}
