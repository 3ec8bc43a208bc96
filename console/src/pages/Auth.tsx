// Sign up, sign in, and the password reset that the reset mail links to.
import { useState, type FormEvent, type ReactNode } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { api, call } from "../api/client";
import { useAction } from "../hooks";
import { session } from "../session";
import { Field, Problem, SecretOnce, fieldError, formError } from "../components/ui";
import { NodeSnippet } from "./Settings";

function AuthFrame({ title, children }: { title: string; children: ReactNode }) {
  return (
    <main className="auth" id="main">
      <p className="brand">Gatehouse</p>
      <h1>{title}</h1>
      {children}
      <p className="auth-docs">
        <a href="/docs/">Documentation</a> · <a href="/docs/api">API reference</a>
      </p>
    </main>
  );
}

/** Runs `action` on submit, keeping its error and whether it is running. */
function useSubmit() {
  const { error, busy, run } = useAction();
  const submit = (action: () => Promise<void>) => (event: FormEvent) => {
    event.preventDefault();
    void run(action);
  };
  return { error, busy, submit };
}

/** The API's message as the start of a sentence. */
function sentence(message: string): string {
  return message.charAt(0).toUpperCase() + message.slice(1);
}

/** `next` as a path of this console, or undefined when it leads elsewhere. */
function sameOrigin(next: string | null): string | undefined {
  if (!next) return undefined;
  try {
    const url = new URL(next, window.location.origin);
    return url.origin === window.location.origin ? url.pathname + url.search : undefined;
  } catch {
    return undefined;
  }
}

export function SignUp() {
  const [, navigate] = useLocation();
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [gatewayKey, setGatewayKey] = useState<string>();
  const { error, busy, submit } = useSubmit();

  if (gatewayKey) {
    return (
      <AuthFrame title="Your tenant is ready">
        <p>Gateway nodes connect to the control plane with this key. Run a node with it:</p>
        <SecretOnce label="Gateway key" value={gatewayKey}>
          <NodeSnippet gatewayKey={gatewayKey} />
        </SecretOnce>
        <button type="button" className="primary" onClick={() => navigate("/")}>
          Continue to the console
        </button>
      </AuthFrame>
    );
  }
  return (
    <AuthFrame title="Create your tenant">
      <form
        onSubmit={submit(async () => {
          const created = await call(api.POST("/api/auth/register", { body: { name, email, password } }));
          session.signIn({ token: created.token, tenantId: created.tenantId, email: email.trim().toLowerCase() });
          setGatewayKey(created.gatewayApiKey);
        })}
      >
        <Field label="Name" error={fieldError(error, "name")}>
          {(attrs) => <input {...attrs} required autoComplete="organization" value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <Field label="Email" error={fieldError(error, "email")}>
          {(attrs) => <input {...attrs} type="email" required autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} />}
        </Field>
        <Field label="Password" hint="At least 8 characters." error={fieldError(error, "password")}>
          {(attrs) => (
            <input {...attrs} type="password" required autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />
          )}
        </Field>
        <Problem error={formError(error, ["name", "email", "password"])} />
        <button type="submit" className="primary" disabled={busy}>
          Sign up
        </button>
      </form>
      <p>
        Have an account? <Link href="/sign-in">Sign in</Link>
      </p>
    </AuthFrame>
  );
}

export function SignIn() {
  const [, navigate] = useLocation();
  const next = new URLSearchParams(useSearch()).get("next");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const { error, busy, submit } = useSubmit();
  return (
    <AuthFrame title="Sign in">
      {session.wasExpired() && !error && (
        <p className="notice" role="status">
          Your session ended. Sign in again to go on.
        </p>
      )}
      <form
        onSubmit={submit(async () => {
          const answer = await call(api.POST("/api/auth/login", { body: { email, password } }));
          session.signIn({ token: answer.token, tenantId: answer.tenantId, email: email.trim().toLowerCase() });
          navigate(sameOrigin(next) ?? "/");
        })}
      >
        <Field label="Email" error={fieldError(error, "email")}>
          {(attrs) => <input {...attrs} type="email" required autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} />}
        </Field>
        <Field label="Password" error={fieldError(error, "password")}>
          {(attrs) => (
            <input {...attrs} type="password" required autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} />
          )}
        </Field>
        <Problem error={formError(error, ["email", "password"])} />
        <button type="submit" className="primary" disabled={busy}>
          Sign in
        </button>
      </form>
      <p>
        <Link href="/forgot-password">Forgot your password?</Link> · New here? <Link href="/sign-up">Sign up</Link>
      </p>
    </AuthFrame>
  );
}

export function ForgotPassword() {
  const [email, setEmail] = useState("");
  const [sent, setSent] = useState<string>();
  const { error, busy, submit } = useSubmit();
  return (
    <AuthFrame title="Reset your password">
      {sent ? (
        <p className="notice" role="status">
          {sent}. The link in it opens the page where you choose a new password.
        </p>
      ) : (
        <form
          onSubmit={submit(async () => {
            const answer = await call(api.POST("/api/auth/forgot-password", { body: { email } }));
            setSent(sentence(answer.message));
          })}
        >
          <Field label="Email" error={fieldError(error, "email")}>
            {(attrs) => <input {...attrs} type="email" required autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} />}
          </Field>
          <Problem error={formError(error, ["email"])} />
          <button type="submit" className="primary" disabled={busy}>
            Send reset link
          </button>
        </form>
      )}
      <p>
        <Link href="/sign-in">Back to sign in</Link>
      </p>
    </AuthFrame>
  );
}

export function ResetPassword() {
  // The mail's link carries the token in the fragment, which no server sees.
  const fromLink = new URLSearchParams(window.location.hash.slice(1)).get("token") ?? "";
  const [token, setToken] = useState(fromLink);
  const [password, setPassword] = useState("");
  const [done, setDone] = useState<string>();
  const { error, busy, submit } = useSubmit();
  return (
    <AuthFrame title="Choose a new password">
      {done ? (
        <p className="notice" role="status">
          {done}. <Link href="/sign-in">Go to sign in</Link>
        </p>
      ) : (
        <form
          onSubmit={submit(async () => {
            const answer = await call(api.POST("/api/auth/reset-password", { body: { token, password } }));
            session.signOut();
            history.replaceState(null, "", "/reset-password");
            setDone(sentence(answer.message));
          })}
        >
          {!fromLink && (
            <Field label="Reset token" hint="From the reset mail." error={fieldError(error, "token")}>
              {(attrs) => <input {...attrs} required value={token} onChange={(e) => setToken(e.target.value)} />}
            </Field>
          )}
          <Field label="New password" hint="At least 8 characters." error={fieldError(error, "password")}>
            {(attrs) => (
              <input {...attrs} type="password" required autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />
            )}
          </Field>
          <Problem error={formError(error, fromLink ? ["password"] : ["token", "password"])} />
          <button type="submit" className="primary" disabled={busy}>
            Set new password
          </button>
        </form>
      )}
      <p>
        <Link href="/sign-in">Back to sign in</Link>
      </p>
    </AuthFrame>
  );
}
