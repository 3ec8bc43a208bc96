//! What `gatehouse dev` prints at start: where everything listens, the dev
//! tenant's credentials, and either the first steps to paste into a shell
//! (`docs/getting-started.sh`, the same file the guide explains and CI
//! runs) or, once the tenant has made something, what it has.

use std::fmt::Write;

use gatehouse_control::store::Store;

/// The first steps, as the guide has them.
const FIRST_STEPS: &str = include_str!("../../docs/getting-started.sh");

/// The line that ends the banner (the test of the first steps looks for it).
pub const LAST_LINE: &str = "(Ctrl-C stops Gatehouse dev.)";

/// Where the dev processes listen, as URLs.
pub struct Addresses {
    pub control: String,
    pub node: String,
    pub admin: String,
    pub echo: Option<String>,
}

/// The dev tenant, as the banner shows it.
pub struct Credentials<'a> {
    pub tenant_id: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub gateway_key: &'a str,
    pub token: &'a str,
}

/// What the tenant has made so far.
#[derive(Debug, Default)]
pub struct Existing {
    /// Name and target URL.
    services: Vec<(String, String)>,
    /// Method, path pattern, whether a key is needed.
    routes: Vec<(String, String, bool)>,
    /// Name and key prefix.
    consumers: Vec<(String, String)>,
}

impl Existing {
    /// Reads the live services, routes and consumers of `tenant_id`.
    pub async fn of(store: &Store, tenant_id: &str) -> Result<Self, sqlx::Error> {
        let services = sqlx::query_as(
            "SELECT name, target_url FROM services WHERE tenant_id = $1 \
             AND deleted_at IS NULL ORDER BY created_at",
        )
        .bind(tenant_id)
        .fetch_all(store.pool())
        .await?;
        let routes: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT method, path_pattern, CASE WHEN auth_required THEN 'key' ELSE 'open' END \
             FROM routes WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at",
        )
        .bind(tenant_id)
        .fetch_all(store.pool())
        .await?;
        let consumers = sqlx::query_as(
            "SELECT name, api_key_prefix FROM consumers WHERE tenant_id = $1 \
             AND revoked_at IS NULL ORDER BY created_at",
        )
        .bind(tenant_id)
        .fetch_all(store.pool())
        .await?;
        Ok(Self {
            services,
            routes: routes
                .into_iter()
                .map(|(method, pattern, auth)| (method, pattern, auth == "key"))
                .collect(),
            consumers,
        })
    }

    fn is_empty(&self) -> bool {
        self.services.is_empty() && self.routes.is_empty() && self.consumers.is_empty()
    }
}

/// The whole banner.
pub fn render(at: &Addresses, who: &Credentials<'_>, existing: &Existing) -> String {
    let mut out = String::from("\nGatehouse dev is up.\n\n");
    let control = &at.control;
    if gatehouse_control::console::CONSOLE.is_built() {
        let _ = writeln!(
            out,
            "  console        {control}/   (sign in with the email and password below)"
        );
    } else {
        let _ = writeln!(
            out,
            "  console        not built into this binary: scripts/console.sh, then start again"
        );
    }
    let _ = writeln!(
        out,
        "  control plane  {control}   (the book: {control}/docs/, OpenAPI: {control}/api/openapi.json)"
    );
    let _ = writeln!(
        out,
        "  gateway node   {}   (admin: {}/healthz, /metrics)",
        at.node, at.admin
    );
    if let Some(echo) = &at.echo {
        let _ = writeln!(
            out,
            "  echo upstream  {echo}   (answers every request with what it received, as JSON)"
        );
    }
    let _ = writeln!(out, "  tenant id      {}", who.tenant_id);
    let _ = writeln!(out, "  email          {}", who.email);
    let _ = writeln!(out, "  password       {}", who.password);
    let _ = writeln!(out, "  gateway key    {}", who.gateway_key);
    out.push_str("\nIn a shell:\n\n");
    // Without an echo upstream the first steps need another to forward to.
    let echo = at.echo.as_deref().unwrap_or("<your service's URL>");
    let _ = writeln!(
        out,
        "  export GATEHOUSE_URL={control} GATEHOUSE_TENANT={} NODE={} ECHO={echo}",
        who.tenant_id, at.node
    );
    let _ = writeln!(out, "  export GATEHOUSE_TOKEN={}", who.token);
    if existing.is_empty() {
        out.push_str(
            "\nThen the first steps (docs/getting-started.md explains each one;\n\
             `sh docs/getting-started.sh` runs them all):\n\n",
        );
        for line in first_steps() {
            if line.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "  {line}");
            }
        }
    } else {
        describe(&mut out, at, existing);
    }
    let _ = writeln!(out, "\n{LAST_LINE}");
    out
}

/// The lines of the first steps, without the file's own header and the
/// anchors the guide includes its parts by.
fn first_steps() -> impl Iterator<Item = &'static str> {
    FIRST_STEPS
        .lines()
        .skip_while(|line| line.starts_with('#'))
        .skip_while(|line| line.is_empty())
        .filter(|line| !line.starts_with("# ANCHOR"))
        .map(str::trim_end)
}

/// What the tenant has, and how to use it.
fn describe(out: &mut String, at: &Addresses, existing: &Existing) {
    out.push_str("\nThe dev tenant already has:\n\n");
    for (name, target) in &existing.services {
        let _ = writeln!(out, "  service   {name} -> {target}");
    }
    for (method, pattern, keyed) in &existing.routes {
        let needs = if *keyed { "needs an API key" } else { "open" };
        let _ = writeln!(out, "  route     {method} {pattern} ({needs})");
    }
    for (name, prefix) in &existing.consumers {
        let _ = writeln!(out, "  consumer  {name} (key {prefix}...)");
    }
    let callable = existing.routes.iter().find(|(method, pattern, keyed)| {
        !keyed && matches!(method.as_str(), "GET" | "ANY") && !pattern.contains([':', '*'])
    });
    out.push('\n');
    if let Some((_, pattern, _)) = callable {
        let _ = writeln!(out, "  curl -sS {}{pattern}", at.node);
    }
    out.push_str(
        "  curl -sS -H \"Authorization: Bearer $GATEHOUSE_TOKEN\" \
         \"$GATEHOUSE_URL/api/tenants/$GATEHOUSE_TENANT/logs\"\n",
    );
    out.push_str(
        "\nA consumer's key is shown only when it is made: make another with\n\
         POST .../consumers (docs/getting-started.md, step 4), or delete\n\
         the data dir to start over.\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Addresses {
        Addresses {
            control: "http://127.0.0.1:3000".into(),
            node: "http://127.0.0.1:8080".into(),
            admin: "http://127.0.0.1:9080".into(),
            echo: Some("http://127.0.0.1:9000".into()),
        }
    }

    const WHO: Credentials<'static> = Credentials {
        tenant_id: "t-1",
        email: "dev@gatehouse.localhost",
        password: "pw",
        gateway_key: "gk_x",
        token: "jwt",
    };

    #[test]
    fn a_new_tenant_gets_the_first_steps() {
        let banner = render(&at(), &WHO, &Existing::default());
        assert!(banner.contains("export GATEHOUSE_URL=http://127.0.0.1:3000 GATEHOUSE_TENANT=t-1"));
        assert!(banner.contains("  SERVICE=$(curl"), "{banner}");
        assert!(
            !banner.contains("CI runs this file"),
            "the file's header is left out"
        );
        assert!(!banner.contains("ANCHOR"), "{banner}");
        assert!(banner.trim_end().ends_with(LAST_LINE));
    }

    #[test]
    fn a_tenant_with_things_is_shown_them_not_made_more() {
        let existing = Existing {
            services: vec![("echo".into(), "http://127.0.0.1:9000".into())],
            routes: vec![
                ("ANY".into(), "/private/*".into(), true),
                ("GET".into(), "/hello".into(), false),
            ],
            consumers: vec![("alice".into(), "ck_abcd".into())],
        };
        let banner = render(&at(), &WHO, &existing);
        assert!(!banner.contains("SERVICE=$(curl"), "{banner}");
        assert!(banner.contains("service   echo -> http://127.0.0.1:9000"));
        assert!(banner.contains("route     ANY /private/* (needs an API key)"));
        assert!(banner.contains("consumer  alice (key ck_abcd...)"));
        assert!(banner.contains("curl -sS http://127.0.0.1:8080/hello"));
    }
}
