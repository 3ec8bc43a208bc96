// The console end to end, as a user drives it: against the real control
// plane (tests/console.rs starts it) and a real gateway node, in Debian's
// chromium. Screens are found by role and label, as a user finds them;
// each screen's screenshot goes to SCREENSHOT_DIR (docs/console/ holds the
// last ones committed).
import { expect, test, type Locator, type Page } from "@playwright/test";
import { gzipSync } from "node:zlib";
import { env, resetLink, send, startNode, until, type Node } from "./gateway";

const password = "correct horse battery";

/** A screenshot of the page, with the secrets on it (`mask`) blacked out. */
async function shot(page: Page, name: string, mask: Locator[] = []) {
  // From the top, so the sticky header is where a reader expects it.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${env.screenshots}/${name}.png`, fullPage: true, mask });
}

function stat(page: Page, label: string) {
  return page.locator(".stat").filter({ has: page.locator(".stat-label", { hasText: new RegExp(`^${label}$`) }) }).locator(".stat-value");
}

async function go(page: Page, screen: string) {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: screen, exact: true }).click();
  await expect(page.getByRole("heading", { level: 1, name: screen })).toBeVisible();
}

test("a tenant signs up, configures a gateway, sends traffic and sees it", async ({ page, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  const email = `ops-${Date.now()}@console.test`;
  let node: Node | undefined;
  try {
    // Sign up: the gateway key is shown once, with the command for a node.
    await page.goto("/");
    await expect(page).toHaveURL(/\/sign-in$/);
    await page.getByRole("link", { name: "Sign up" }).click();
    await shot(page, "sign-up");
    await page.getByLabel("Name").fill("Acme");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign up" }).click();
    const gatewayKey = await page.getByLabel("Gateway key").inputValue();
    expect(gatewayKey).toMatch(/^gk_/);
    await expect(page.getByRole("figure", { name: "Command that starts a gateway node" })).toContainText(gatewayKey);
    await shot(page, "welcome", [page.getByLabel("Gateway key"), page.locator(".secret figure")]);
    await page.getByRole("button", { name: "Continue to the console" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Overview" })).toBeVisible();
    const tenantId: string = await page.evaluate(() => JSON.parse(sessionStorage.getItem("gatehouse.session")!).tenantId);

    // Services: the API's validation error shows at the field it names.
    await go(page, "Services");
    await page.getByRole("button", { name: "New service" }).click();
    let dialog = page.getByRole("dialog", { name: "New service" });
    await dialog.getByLabel("Name").fill("orders");
    await dialog.getByLabel("Target URL").fill("not a url");
    await dialog.getByRole("button", { name: "Create service" }).click();
    await expect(dialog.getByLabel("Target URL")).toHaveAttribute("aria-invalid", "true");
    await expect(dialog.getByLabel("Target URL")).toHaveAccessibleDescription(/http/);
    await dialog.getByLabel("Target URL").fill(env.upstream);
    await dialog.getByLabel("Health check path").fill("/health");
    await dialog.getByRole("button", { name: "Create service" }).click();
    await expect(dialog).toBeHidden();
    await page.getByRole("button", { name: "New service" }).click();
    dialog = page.getByRole("dialog", { name: "New service" });
    await dialog.getByLabel("Name").fill("legacy");
    await dialog.getByLabel("Target URL").fill(env.dead);
    await dialog.getByRole("button", { name: "Create service" }).click();
    await expect(page.getByRole("cell", { name: "legacy", exact: true })).toBeVisible();
    await page.getByRole("button", { name: "Edit orders" }).click();
    dialog = page.getByRole("dialog", { name: "Edit service" });
    await expect(dialog.getByLabel("Target URL")).toHaveValue(`${env.upstream}/`); // as the API normalized it
    await dialog.getByLabel("Timeout (ms)").fill("5000");
    await dialog.getByRole("button", { name: "Save service" }).click();
    await expect(dialog).toBeHidden();
    await expect(page.getByRole("row").filter({ hasText: "orders" })).toContainText("5000 ms");
    await shot(page, "services");

    // Routes: a bad pattern is refused at its field; then two routes.
    await go(page, "Routes");
    await page.getByRole("button", { name: "New route" }).click();
    dialog = page.getByRole("dialog", { name: "New route" });
    await dialog.getByLabel("Path pattern").fill("orders");
    await dialog.getByRole("button", { name: "Create route" }).click();
    await expect(dialog.getByLabel("Path pattern")).toHaveAttribute("aria-invalid", "true");
    await dialog.getByLabel("Path pattern").fill("/orders/:id");
    await dialog.getByLabel("Service").selectOption({ label: "orders" });
    await dialog.getByRole("button", { name: "Create route" }).click();
    await expect(dialog).toBeHidden();
    await page.getByRole("button", { name: "New route" }).click();
    dialog = page.getByRole("dialog", { name: "New route" });
    await dialog.getByLabel("Path pattern").fill("/legacy");
    await dialog.getByLabel("Service").selectOption({ label: "legacy" });
    await dialog.getByLabel("Require an API key").uncheck();
    await dialog.getByRole("button", { name: "Create route" }).click();
    await expect(page.getByRole("cell", { name: "/legacy", exact: true })).toBeVisible();

    // Consumers: the key is shown once, and the copy button copies it.
    await go(page, "Consumers");
    await page.getByRole("button", { name: "New consumer" }).click();
    dialog = page.getByRole("dialog", { name: "New consumer" });
    await dialog.getByLabel("Name").fill("mobile-app");
    await dialog.getByRole("button", { name: "Create consumer" }).click();
    const keyDialog = page.getByRole("dialog", { name: "API key of mobile-app" });
    const apiKey = await keyDialog.getByLabel("API key").inputValue();
    expect(apiKey).toMatch(/^ck_/);
    await keyDialog.getByRole("button", { name: "Copy" }).click();
    await expect(keyDialog.getByRole("button", { name: "Copied" })).toBeVisible();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(apiKey);
    await shot(page, "consumer-key", [keyDialog.getByLabel("API key")]);
    await keyDialog.getByRole("button", { name: "Done" }).click();
    await expect(page.getByRole("cell", { name: "mobile-app", exact: true })).toBeVisible();
    await expect(page.getByText(apiKey)).toHaveCount(0);
    await page.getByRole("button", { name: "New consumer" }).click();
    dialog = page.getByRole("dialog", { name: "New consumer" });
    await dialog.getByLabel("Name").fill("old-app");
    await dialog.getByLabel("Rate-limit tier").selectOption("pro");
    await dialog.getByRole("button", { name: "Create consumer" }).click();
    await page.getByRole("dialog", { name: "API key of old-app" }).getByRole("button", { name: "Done" }).click();
    await page.getByRole("button", { name: "Revoke old-app" }).click();
    await page.getByRole("dialog", { name: "Revoke consumer old-app?" }).getByRole("button", { name: "Revoke" }).click();
    await expect(page.getByRole("cell", { name: "old-app", exact: true })).toHaveCount(0);
    await shot(page, "consumers");

    // Traffic through a real node: 5 served, 3 without a key, 2 to a dead upstream.
    node = await startNode(gatewayKey);
    const live = node;
    for (let i = 0; i < 5; i++) expect((await send(node, `/orders/${i}`, apiKey)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await send(node, "/orders/1")).status).toBe(401);
    for (let i = 0; i < 2; i++) expect((await send(node, "/legacy")).status).toBe(502);

    // The overview shows it: traffic, the gateway online, the open error.
    await go(page, "Overview");
    await expect(page.getByText("Online", { exact: true })).toBeVisible();
    await expect(async () => {
      await page.reload();
      await expect(stat(page, "Requests")).toHaveText("10", { timeout: 2_000 });
    }).toPass({ timeout: 60_000 });
    await expect(stat(page, "4xx rate")).toHaveText("30.0%");
    await expect(stat(page, "5xx rate")).toHaveText("20.0%");
    await expect(stat(page, "Distinct consumers")).toHaveText("1");
    await expect(stat(page, "p99 latency")).toHaveText(/ms$/);
    await expect(async () => {
      await page.reload();
      await expect(stat(page, "Unresolved errors")).toHaveText("1", { timeout: 2_000 });
    }).toPass({ timeout: 30_000 });
    await expect(async () => {
      await page.reload();
      await expect(page.getByRole("list", { name: "Service health" }).getByRole("listitem").filter({ hasText: "orders" })).toContainText("up", { timeout: 2_000 });
    }).toPass({ timeout: 30_000 });
    await expect(page.getByRole("img", { name: "Requests per bucket chart" }).locator("canvas")).toBeVisible();
    await page.getByRole("button", { name: "Last 24 hours" }).click();
    await expect(page).toHaveURL(/period=24h/);
    await expect(stat(page, "Requests")).toHaveText("10");
    await page.getByRole("button", { name: "Last hour" }).click();
    await shot(page, "overview");

    // Logs: a filter from the URL, a request's detail, live mode.
    await page.goto("/logs?statusCode=401");
    const rows = page.getByRole("table", { name: "Request logs" }).locator("tbody tr");
    await expect(rows).toHaveCount(3);
    await expect(page.getByLabel("Status")).toHaveValue("401");
    for (const status of await rows.locator("td:nth-child(4)").allTextContents()) expect(status).toBe("401");
    await rows.first().getByRole("button", { name: /^Details of request/ }).click();
    const detail = page.getByRole("dialog", { name: "Request" });
    await expect(detail).toContainText("GET /orders/1");
    await expect(detail).toContainText("anonymous");
    await shot(page, "log-detail");
    await detail.getByRole("button", { name: "Close" }).click();
    // Every filter comes from the URL: a time range and an exact path.
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const inAnHour = new Date(Date.now() + 3_600_000).toISOString();
    await page.goto(`/logs?from=${hourAgo}&to=${inAnHour}&path=/orders/1&statusCode=401`);
    await expect(rows).toHaveCount(3);
    await expect(page.getByLabel("Path")).toHaveValue("/orders/1");
    await expect(page.getByLabel("From")).toHaveValue(/^\d{4}-\d\d-\d\dT\d\d:\d\d$/);
    await page.goto(`/logs?to=${hourAgo}`);
    await expect(page.getByText("No requests match these filters.")).toBeVisible();
    await page.goto("/logs?statusCode=401");
    await expect(rows).toHaveCount(3);
    await page.getByLabel("Live (every 3 s)").check();
    await expect(page).toHaveURL(/live=1/);
    await expect(page).toHaveURL(/statusCode=401/);
    expect((await send(node, "/orders/9")).status).toBe(401);
    await expect(rows).toHaveCount(4, { timeout: 20_000 });
    await page.getByLabel("Live (every 3 s)").uncheck();
    await page.getByLabel("Status").fill("");
    await page.getByLabel("Consumer").selectOption({ label: "mobile-app" });
    await page.getByRole("button", { name: "Apply filters" }).click();
    await expect(page).toHaveURL(/consumerId=/);
    await expect(rows).toHaveCount(5);
    await shot(page, "logs");

    // Errors: grouped repeats, the route involved, resolve.
    await go(page, "Errors");
    const event = page.getByRole("list", { name: "Unresolved errors" }).getByRole("listitem");
    await expect(event).toHaveCount(1);
    await expect(event).toContainText("upstream_unavailable");
    await expect(event).toContainText("×2");
    await expect(event).toContainText("could not connect to");
    await expect(event.getByRole("link", { name: "Route GET /legacy" })).toBeVisible();
    await shot(page, "errors");
    await event.getByRole("button", { name: /^Resolve/ }).click();
    await expect(page.getByText("No unresolved errors. All quiet.")).toBeVisible();
    await page.getByRole("button", { name: "Resolved", exact: true }).click();
    await expect(page.getByRole("list", { name: "Resolved errors" }).getByRole("listitem")).toContainText("upstream_unavailable");
    await page.getByRole("list", { name: "Resolved errors" }).getByRole("link", { name: "Route GET /legacy" }).click();
    await expect(page.getByRole("heading", { level: 1, name: "Routes" })).toBeVisible();
    await expect(page.locator("tr.linked")).toContainText("/legacy");

    // Plugins: upload one, attach it with config (invalid JSON is caught
    // first), see it run on the node, and see why it cannot be deleted.
    await go(page, "Plugins");
    await page.getByLabel("Component (.wasm)").setInputFiles(env.plugin);
    await expect(page.getByLabel("Plugin name")).toHaveValue("testbed");
    await page.getByRole("button", { name: "Upload" }).click();
    await expect(page.getByRole("cell", { name: "testbed", exact: true })).toBeVisible();
    await expect(page.getByRole("cell", { name: "no route" })).toBeVisible();
    await go(page, "Routes");
    await page.getByRole("button", { name: "Edit GET /orders/:id" }).click();
    dialog = page.getByRole("dialog", { name: "Edit route" });
    await dialog.getByRole("button", { name: "Add plugin" }).click();
    await expect(dialog.getByLabel("Plugin 1", { exact: true })).toHaveValue(/.+/);
    await dialog.getByLabel("Failure policy of plugin 1").selectOption("open");
    await dialog.getByLabel("Config of plugin 1 (JSON)").fill('{"mode": header}');
    await dialog.getByRole("button", { name: "Save route" }).click();
    await expect(dialog.getByLabel("Config of plugin 1 (JSON)")).toHaveAccessibleDescription(/not valid JSON/);
    await dialog.getByLabel("Config of plugin 1 (JSON)").fill('{"mode": "header"}');
    await shot(page, "route-plugins");
    await dialog.getByRole("button", { name: "Save route" }).click();
    await expect(dialog).toBeHidden();
    await expect(page.getByRole("cell", { name: "testbed@1", exact: true })).toBeVisible();
    await shot(page, "routes");
    await until("the plugin to run on the node", async () => {
      const answer = await send(live, "/orders/7", apiKey);
      return answer.status === 200 && JSON.parse(answer.body).headers["x-testbed"] === "GET /orders/7";
    });
    await go(page, "Plugins");
    await expect(page.getByRole("link", { name: "GET /orders/:id" })).toBeVisible();
    await shot(page, "plugins");
    await page.getByRole("button", { name: "Delete testbed@1" }).click();
    const confirm = page.getByRole("dialog", { name: "Delete plugin testbed@1?" });
    await expect(confirm).toContainText("cannot be deleted while a route uses it");
    await confirm.getByRole("button", { name: "Delete" }).click();
    await expect(confirm.getByRole("alert")).toContainText("plugin_in_use");
    await confirm.getByRole("button", { name: "Cancel" }).click();

    // Settings: a tier changed; the gateway key rotated (shown once), which
    // cuts the node off until it runs with the new key.
    await go(page, "Settings");
    await expect(page.getByLabel("Tier 2 name")).toHaveValue("free");
    await page.getByLabel("Tier 2 requests a minute").fill("120");
    await page.getByRole("button", { name: "Save tiers" }).click();
    await expect(page.getByText("Tiers saved; nodes apply them now.")).toBeVisible();
    await page.getByLabel("Token name").fill("deploy");
    await page.getByLabel("Scope", { exact: true }).selectOption("write");
    await page.getByRole("button", { name: "Make token" }).click();
    const token = await page.getByLabel("New automation token").inputValue();
    expect(token).toMatch(/^gt_/);
    const tokens = page.getByRole("table", { name: "Automation tokens" });
    await expect(tokens.getByRole("row").filter({ hasText: "deploy" })).toContainText("write");
    await page.getByRole("button", { name: /^Revoke deploy \(gt_/ }).click();
    await page.getByRole("dialog", { name: "Revoke token deploy?" }).getByRole("button", { name: "Revoke" }).click();
    await expect(tokens).toBeHidden();
    expect((await page.request.get(`/api/tenants/${tenantId}/services`, { headers: { Authorization: `Bearer ${token}` } })).status()).toBe(401);
    await page.getByRole("button", { name: "Rotate gateway key" }).click();
    await page.getByRole("dialog", { name: "Rotate the gateway key?" }).getByRole("button", { name: "Rotate key" }).click();
    const rotated = await page.getByLabel("New gateway key").inputValue();
    expect(rotated).toMatch(/^gk_/);
    expect(rotated).not.toBe(gatewayKey);
    await shot(page, "settings", [page.getByLabel("New gateway key"), page.getByLabel("New automation token"), page.locator(".secret figure")]);
    await go(page, "Overview");
    await expect(page.getByText("Offline", { exact: true })).toBeVisible({ timeout: 30_000 });
    await node.stop();
    node = await startNode(rotated);
    await expect(page.getByText("Online", { exact: true })).toBeVisible({ timeout: 30_000 });

    // Sign out, forget the password, reset it from the mail's link, and
    // sign in again with the keyboard only.
    await page.getByRole("button", { name: "Sign out" }).click();
    await expect(page.getByRole("heading", { name: "Sign in" })).toBeVisible();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.getByRole("link", { name: "Forgot your password?" }).click();
    await page.getByLabel("Email").fill(email);
    await page.getByRole("button", { name: "Send reset link" }).click();
    await expect(page.getByRole("status")).toContainText("reset link is on its way");
    await shot(page, "forgot-password");
    let link: string | undefined;
    await until("the reset mail", async () => (link = resetLink(email)) !== undefined);
    expect(link!.startsWith(env.control)).toBe(true);
    await page.goto(link!);
    await expect(page.getByLabel("Reset token")).toHaveCount(0);
    await page.getByLabel("New password").fill("a brand new password");
    await shot(page, "reset-password");
    await page.getByRole("button", { name: "Set new password" }).click();
    await expect(page.getByRole("status")).toContainText("Password changed");
    await page.getByRole("link", { name: "Go to sign in" }).click();
    await page.getByLabel("Email").focus();
    await page.keyboard.type(email);
    await page.keyboard.press("Tab");
    await page.keyboard.type("a brand new password");
    await shot(page, "sign-in");
    await page.keyboard.press("Enter");
    await expect(page.getByRole("heading", { level: 1, name: "Overview" })).toBeVisible();
    // The token was never a cookie.
    expect(await context.cookies()).toEqual([]);
  } finally {
    await node?.stop();
  }
});

/** A tenant made through the API, signed in in `page`. */
async function signedIn(page: Page): Promise<{ token: string; tenantId: string; email: string }> {
  const email = `t-${Date.now()}-${Math.random().toString(36).slice(2)}@console.test`;
  const answer = await page.request.post("/api/auth/register", { data: { name: "T", email, password } });
  expect(answer.status()).toBe(201);
  const body = await answer.json();
  await page.goto("/sign-in");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Overview" })).toBeVisible();
  return { ...body, email };
}

test("a token that stops working returns to sign-in, then to the page", async ({ page }) => {
  const tenant = await signedIn(page);
  await page.evaluate(() => {
    const stored = JSON.parse(sessionStorage.getItem("gatehouse.session")!);
    sessionStorage.setItem("gatehouse.session", JSON.stringify({ ...stored, token: "not-a-token" }));
  });
  await page.goto("/services");
  await expect(page).toHaveURL(/\/sign-in\?next=%2Fservices/);
  await expect(page.getByText("Your session ended. Sign in again to go on.")).toBeVisible();
  await page.getByLabel("Email").fill(tenant.email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/services$/);
  await expect(page.getByRole("heading", { level: 1, name: "Services" })).toBeVisible();
});

test("wrong credentials and an unreachable API say so", async ({ page }) => {
  await page.goto("/sign-in");
  await page.getByLabel("Email").fill("nobody@console.test");
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toContainText("invalid_credentials");
  await page.route("**/api/auth/login", (route) => route.abort("connectionrefused"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toContainText("The control plane did not answer");
});

test("the first load is small and does not shift", async ({ page }) => {
  const html = await (await page.request.get("/", { headers: { Accept: "text/html" } })).text();
  const scripts = [...html.matchAll(/<(?:script[^>]+src|link[^>]+rel="modulepreload"[^>]+href)="([^"]+)"/g)].map((m) => m[1]);
  expect(scripts.length).toBeGreaterThan(0);
  let compressed = 0;
  for (const src of new Set(scripts)) {
    const asset = await page.request.get(src);
    expect(asset.headers()["cache-control"]).toContain("immutable");
    expect(asset.headers()["content-encoding"], `${src} goes out compressed`).toBe("gzip");
    compressed += gzipSync(await asset.body()).length;
  }
  console.log(`first-load JS: ${(compressed / 1024).toFixed(1)} KiB gzipped`);
  expect(compressed).toBeLessThan(250 * 1024);

  await signedIn(page);
  const shift = await overviewShift(page);
  console.log(`overview cumulative layout shift: ${shift.toFixed(4)}`);
  expect(shift).toBeLessThan(0.1);
});

/** The overview's cumulative layout shift in its first 2 seconds. */
async function overviewShift(page: Page): Promise<number> {
  await page.goto("/");
  return page.evaluate(
    () =>
      new Promise<number>((resolve) => {
        let total = 0;
        new PerformanceObserver((list) => {
          for (const entry of list.getEntries() as (PerformanceEntry & { value: number; hadRecentInput: boolean })[]) {
            if (!entry.hadRecentInput) total += entry.value;
          }
        }).observe({ type: "layout-shift", buffered: true });
        setTimeout(() => resolve(total), 2_000);
      }),
  );
}

test("every screen fits a 390 px phone", async ({ page }) => {
  await signedIn(page);
  await page.setViewportSize({ width: 390, height: 844 });
  const shift = await overviewShift(page);
  console.log(`overview cumulative layout shift at 390 px: ${shift.toFixed(4)}`);
  expect(shift).toBeLessThan(0.1);
  for (const path of ["/", "/services", "/routes", "/consumers", "/plugins", "/logs", "/errors", "/settings"]) {
    await page.goto(path);
    await expect(page.getByRole("heading", { level: 1 })).toBeVisible();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width, `${path} is ${width} px wide`).toBeLessThanOrEqual(390);
  }
  await page.goto("/");
  await page.getByRole("button", { name: "Menu" }).click();
  await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Logs" })).toBeVisible();
  await shot(page, "overview-phone");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Logs" }).click();
  await shot(page, "logs-phone");
});

test("every control has a label and every button a name, in every dialog too", async ({ page }) => {
  const tenant = await signedIn(page);
  const answer = await page.request.post(`/api/tenants/${tenant.tenantId}/services`, {
    headers: { Authorization: `Bearer ${tenant.token}` },
    data: { name: "svc", targetUrl: env.upstream },
  });
  expect(answer.status()).toBe(201);
  const unnamed = () =>
    page.evaluate(() =>
      [...document.querySelectorAll("input, select, textarea, button")]
        .filter((el) => (el as HTMLElement).getClientRects().length > 0)
        .filter((el) => {
          const labelled = (el as HTMLInputElement).labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
          return el.tagName === "BUTTON" ? !(el.textContent?.trim() || el.getAttribute("aria-label")) : !labelled;
        })
        .map((el) => el.outerHTML.slice(0, 80)),
    );
  const screens: [string, string?][] = [
    ["/"],
    ["/services", "New service"],
    ["/routes", "New route"],
    ["/consumers", "New consumer"],
    ["/plugins"],
    ["/logs"],
    ["/errors"],
    ["/settings", "Rotate gateway key"],
    ["/sign-up"],
    ["/forgot-password"],
    ["/reset-password"],
  ];
  for (const [path, opens] of screens) {
    await page.goto(path);
    await expect(page.getByRole("heading", { level: 1 })).toBeVisible();
    expect(await unnamed(), path).toEqual([]);
    if (opens) {
      await page.getByRole("button", { name: opens }).click();
      await expect(page.getByRole("dialog")).toBeVisible();
      expect(await unnamed(), `${path}: ${opens}`).toEqual([]);
      await page.keyboard.press("Escape");
      await expect(page.getByRole("dialog")).toBeHidden();
    }
  }
});
