//! The web UI over HTTP, without a browser: every page needs a session (else the sign-in
//! form), every POST a CSRF token of that session, every answer a strict CSP, and the session
//! cookie's flags (HttpOnly, SameSite=Strict, Secure over TLS). Sign-in is real LDAP
//! (scripts/setup/slapd.sh).

mod ui_support;

use std::sync::Arc;

use kloud::hostdb::{Role, Store};
use ui_support::{client, csrf_field, ldap_url, minimal_config, serve, set_cookie, sign_in};

fn store(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(kloud::hostdb::sqlite::open(&dir.join("hostdb.db")).unwrap())
}

#[test]
fn without_a_session_every_page_sends_to_the_sign_in_form() {
    let Some(url) = ldap_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = minimal_config(dir.path(), &url);
    let s = serve(store(dir.path()), &config, None);
    let c = client();
    for page in [
        "/ui/",
        "/ui/fleet?tag=web",
        "/ui/map",
        "/ui/tags",
        "/ui/my",
        "/ui/hosts/x",
    ] {
        let resp = c.get(s.url(page)).send().unwrap();
        assert_eq!(resp.status(), 303, "{page}");
        let to = resp.headers()["location"].to_str().unwrap().to_string();
        let next: String = form_urlencoded::byte_serialize(page.as_bytes()).collect();
        assert_eq!(to, format!("/ui/login?next={next}"), "{page}");
    }
    // The live stream answers 401 (an EventSource cannot follow a redirect to a form).
    assert_eq!(c.get(s.url("/ui/events")).send().unwrap().status(), 401);
    // POSTs without a session go to the form too, and change nothing.
    let resp = c
        .post(s.url("/ui/my/request"))
        .form(&[("offer", "small")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 303);
    // The sign-in form and the static files need no session.
    assert_eq!(c.get(s.url("/ui/login")).send().unwrap().status(), 200);
    let css = c.get(s.url("/ui/static/kloud.css")).send().unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        c.get(s.url("/ui/static/nope.js")).send().unwrap().status(),
        404
    );
}

#[test]
fn every_answer_carries_a_strict_csp_and_the_cookies_their_flags() {
    let Some(url) = ldap_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = minimal_config(dir.path(), &url);
    let s = serve(store(dir.path()), &config, None);
    let c = client();
    let form = c.get(s.url("/ui/login")).send().unwrap();
    let h = form.headers();
    assert_eq!(h["content-security-policy"], kloud::ui::CSP);
    let csp = kloud::ui::CSP;
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    let (_, login_cookie) = set_cookie(&form, "kloud_login").unwrap();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"));
    let html = form.text().unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );

    let session = sign_in(&c, &s, "alice");
    let page = c
        .get(s.url("/ui/fleet"))
        .header("cookie", format!("kloud_session={session}"))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-security-policy"], kloud::ui::CSP);
    assert_eq!(page.headers()["cache-control"], "no-store");

    // The session cookie itself, over plain HTTP: HttpOnly, SameSite=Strict, not Secure.
    let form = c.get(s.url("/ui/login")).send().unwrap();
    let (lc, _) = set_cookie(&form, "kloud_login").unwrap();
    let csrf = csrf_field(&form.text().unwrap());
    let resp = c
        .post(s.url("/ui/login"))
        .header("cookie", format!("kloud_login={lc}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", "alice-secret"),
        ])
        .send()
        .unwrap();
    let (_, cookie) = set_cookie(&resp, "kloud_session").unwrap();
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("; Path=/ui"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[test]
fn over_tls_the_session_cookie_is_secure() {
    let Some(url) = ldap_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = minimal_config(dir.path(), &url);
    let store = store(dir.path());
    let cert = kloud::server::tls::self_signed(&["localhost".to_string()]).unwrap();
    let tls = kloud::server::tls::server_config(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
        .unwrap();
    let running = kloud::server::tls::spawn(
        "127.0.0.1:0".parse().unwrap(),
        move || ui_support::app(store, &config, None, true, None).0,
        tls,
        kloud::server::tls::Timeouts::default(),
        2,
    )
    .unwrap();
    let c = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", running.addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", running.addr.port());
    let form = c.get(format!("{base}/ui/login")).send().unwrap();
    let (lc, login_cookie) = set_cookie(&form, "kloud_login").unwrap();
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");
    let csrf = csrf_field(&form.text().unwrap());
    let resp = c
        .post(format!("{base}/ui/login"))
        .header("cookie", format!("kloud_login={lc}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "carol"),
            ("password", "carol-secret"),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 303);
    let (_, cookie) = set_cookie(&resp, "kloud_session").unwrap();
    assert!(
        cookie.contains("; Secure") && cookie.contains("; HttpOnly"),
        "{cookie}"
    );
    assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
}

#[test]
fn a_post_without_the_sessions_csrf_token_is_refused() {
    let Some(url) = ldap_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = minimal_config(dir.path(), &url);
    let st = store(dir.path());
    let s = serve(st.clone(), &config, None);
    let c = client();
    let session = sign_in(&c, &s, "alice");
    let cookie = format!("kloud_session={session}");
    let page = c
        .get(s.url("/ui/my"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    let good = csrf_field(&page.text().unwrap());
    let other = sign_in(&c, &s, "bob");
    let bobs = {
        let p = c
            .get(s.url("/ui/my"))
            .header("cookie", format!("kloud_session={other}"));
        csrf_field(&p.send().unwrap().text().unwrap())
    };
    assert_ne!(good, bobs, "each session has its own token");
    for path in [
        "/ui/logout",
        "/ui/my/request",
        "/ui/my/x.ui.example/delete",
        "/ui/my/x/recreate",
    ] {
        for csrf in [None, Some("0000"), Some(bobs.as_str())] {
            let mut form = vec![("offer", "small")];
            if let Some(t) = csrf {
                form.push(("csrf", t));
            }
            let resp = c
                .post(s.url(path))
                .header("cookie", &cookie)
                .form(&form)
                .send()
                .unwrap();
            assert_eq!(resp.status(), 403, "{path} with {csrf:?}");
        }
    }
    // Still signed in (the logout without a token did nothing).
    let page = c
        .get(s.url("/ui/fleet"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    // The sign-in form: a POST without its cookie's token is refused too.
    let resp = c
        .post(s.url("/ui/login"))
        .form(&[
            ("csrf", "abc"),
            ("username", "alice"),
            ("password", "alice-secret"),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(set_cookie(&resp, "kloud_session").is_none());
    // With the token, sign-out works and ends the session in HostDB.
    let resp = c
        .post(s.url("/ui/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", good.as_str())])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(
        st.token_verify(&session).unwrap().is_none(),
        "the session is gone"
    );
    let page = c
        .get(s.url("/ui/fleet"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(page.status(), 303);
}

#[test]
fn roles_decide_what_a_person_sees_and_api_tokens_do_not_sign_in() {
    let Some(url) = ldap_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = minimal_config(dir.path(), &url);
    let st = store(dir.path());
    let s = serve(st.clone(), &config, None);
    let c = client();
    let carol = format!("kloud_session={}", sign_in(&c, &s, "carol"));
    for page in ["/ui/fleet", "/ui/map", "/ui/tags"] {
        let resp = c.get(s.url(page)).header("cookie", &carol).send().unwrap();
        assert_eq!(resp.status(), 403, "carol (user) on {page}");
    }
    let resp = c
        .get(s.url("/ui/"))
        .header("cookie", &carol)
        .send()
        .unwrap();
    assert_eq!(resp.headers()["location"], "/ui/my");
    assert_eq!(
        c.get(s.url("/ui/my"))
            .header("cookie", &carol)
            .send()
            .unwrap()
            .status(),
        200
    );
    let alice = format!("kloud_session={}", sign_in(&c, &s, "alice"));
    let resp = c
        .get(s.url("/ui/"))
        .header("cookie", &alice)
        .send()
        .unwrap();
    assert_eq!(resp.headers()["location"], "/ui/fleet");
    // A bad password: the form again, with the one message, and no session.
    let form = c.get(s.url("/ui/login")).send().unwrap();
    let (lc, _) = set_cookie(&form, "kloud_login").unwrap();
    let csrf = csrf_field(&form.text().unwrap());
    let resp = c
        .post(s.url("/ui/login"))
        .header("cookie", format!("kloud_login={lc}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", "wrong"),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(set_cookie(&resp, "kloud_session").is_none());
    assert!(resp
        .text()
        .unwrap()
        .contains(kloud::identity::BAD_CREDENTIALS));
    // An admin API token in the cookie is not a session.
    let (_, secret) = st.token_create("ci", Role::Admin).unwrap();
    let resp = c
        .get(s.url("/ui/fleet"))
        .header("cookie", format!("kloud_session={secret}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 303);
}
