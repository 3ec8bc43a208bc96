// What the browser tests need outside the browser: a real gateway node
// (the gatehouse binary), traffic through it, and the reset mail.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** What tests/console.rs passes in. */
export const env = {
  control: need("GATEHOUSE_URL"),
  bin: need("GATEHOUSE_BIN"),
  upstream: need("UPSTREAM_URL"),
  dead: need("DEAD_URL"),
  plugin: need("PLUGIN_WASM"),
  outbox: need("MAIL_OUTBOX"),
  screenshots: need("SCREENSHOT_DIR"),
};

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through \`cargo test --test console\``);
  return value;
}

export interface Node {
  base: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `gatehouse proxy` with `key`; resolves once it serves a config
 * (its admin `/healthz` answers 200). */
export function startNode(key: string): Promise<Node> {
  const state = mkdtempSync(join(tmpdir(), "gatehouse-console-node-"));
  const child = spawn(
    env.bin,
    ["proxy", `--control-url=${env.control}`, `--gateway-key=${key}`, "--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0", `--state-dir=${state}`, "--shutdown-grace=1"],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, RUST_LOG: "info,pingora=warn" } },
  );
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`the node did not start:\n${seen}`)), 30_000);
    child.stderr!.on("data", (chunk: Buffer) => {
      seen += chunk.toString().replace(/\x1b\[[0-9;]*m/g, "");
      const line = seen.split("\n").find((l) => l.includes("gateway node starting")) ?? "";
      const listen = / listen="?([^\s"]+)/.exec(line);
      const admin = / admin="?([^\s"]+)/.exec(line);
      if (listen && admin) {
        clearTimeout(timer);
        child.stderr!.removeAllListeners("data");
        child.stderr!.resume();
        const ready = () => fetch(`http://${admin[1]}/healthz`).then((r) => r.status === 200);
        until("the node to serve a config", ready).then(() => resolve(node), reject);
        const node: Node = {
          base: `http://${listen[1]}`,
          process: child,
          stop: () =>
            new Promise((done) => {
              if (child.exitCode !== null) return done();
              child.once("exit", () => done());
              child.kill("SIGTERM");
            }),
        };
      }
    });
    child.once("exit", (code) => reject(new Error(`the node exited (${code}):\n${seen}`)));
  });
}

/** GETs `path` on the node, with `key` when given: the status and body. */
export async function send(node: Node, path: string, key?: string): Promise<{ status: number; body: string }> {
  const response = await fetch(node.base + path, { headers: key ? { "X-API-Key": key } : {} });
  return { status: response.status, body: await response.text() };
}

/** Retries `check` until it returns true (at most `ms`). */
export async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The reset link of the newest reset mail to `email` in the outbox. */
export function resetLink(email: string): string | undefined {
  const mails = readdirSync(env.outbox)
    .map((name) => join(env.outbox, name))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  for (const file of mails) {
    // Long lines may come quoted-printable: undo its soft breaks and =3D.
    const text = readFileSync(file, "utf8").replace(/=\r?\n/g, "").replace(/=3D/g, "=");
    if (!text.includes(email)) continue;
    const link = /(https?:\/\/\S+\/reset-password#token=\S+)/.exec(text);
    if (link) return link[1];
  }
  return undefined;
}
