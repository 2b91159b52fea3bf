//! The page templates, compiled into the binary, and rendering them into answers.
//!
//! Templates are minijinja with HTML auto-escaping (every name ends in `.html`). A page's
//! template draws its `<main>`; `base.html` wraps it with the navigation, the person signed
//! in and the sign-out form. Inside, the part live updates replace is `<div id="live">`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::{context, Environment, Value};
use serde::Serialize;

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("fleet.html", include_str!("templates/fleet.html")),
    ("map.html", include_str!("templates/map.html")),
    ("host.html", include_str!("templates/host.html")),
    ("tags.html", include_str!("templates/tags.html")),
    ("my.html", include_str!("templates/my.html")),
];

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Templates {
        Templates::new()
    }
}

impl Templates {
    /// Compile every template. They are part of the binary, so a broken one is a bug that
    /// the tests catch; it renders as an error page rather than stopping the server.
    pub fn new() -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
        env.add_filter("urlencode", urlencode);
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                eprintln!("kloud ui: template `{name}` does not compile: {e}");
            }
        }
        Templates { env }
    }

    /// The HTML of page `name` over `ctx`, inside `base.html`.
    pub fn html(&self, name: &str, ctx: impl Serialize) -> Result<String, minijinja::Error> {
        let ctx = Value::from_serialize(ctx);
        let body = self.env.get_template(name)?.render(&ctx)?;
        let page = context! { body => Value::from_safe_string(body), ..ctx };
        self.env.get_template("base.html")?.render(page)
    }

    /// An HTML answer of template `name`, or a plain 500 naming the template error.
    pub fn page(&self, status: StatusCode, name: &str, ctx: impl Serialize) -> Response {
        match self.html(name, ctx) {
            Ok(body) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("rendering `{name}`: {e:#}"),
            )
                .into_response(),
        }
    }
}

/// `|urlencode`: a value made safe for a URL's query or path segment.
fn urlencode(value: String) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
