// The frame of every signed-in screen: navigation, the tenant, sign out,
// the documentation.
import { useState, type ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { session, useSession } from "../session";

const SCREENS = [
  ["/", "Overview"],
  ["/services", "Services"],
  ["/routes", "Routes"],
  ["/consumers", "Consumers"],
  ["/plugins", "Plugins"],
  ["/logs", "Logs"],
  ["/errors", "Errors"],
  ["/settings", "Settings"],
] as const;

export function Layout({ children }: { children: ReactNode }) {
  const [location, navigate] = useLocation();
  const current = useSession();
  const [menuOpen, setMenuOpen] = useState(false);
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link href="/" className="brand">
          Gatehouse
        </Link>
        <button
          type="button"
          className="menu-toggle quiet"
          aria-expanded={menuOpen}
          aria-controls="main-nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <nav id="main-nav" aria-label="Main" className={menuOpen ? "open" : ""}>
          {SCREENS.map(([href, name]) => (
            <Link
              key={href}
              href={href}
              aria-current={location === href ? "page" : undefined}
              onClick={() => setMenuOpen(false)}
            >
              {name}
            </Link>
          ))}
        </nav>
        <div className="account">
          <a href="/docs/">Docs</a>
          <a href="/docs/api">API reference</a>
          <span className="who" title={`tenant ${current?.tenantId}`}>
            {current?.email}
          </span>
          <button
            type="button"
            className="quiet"
            onClick={() => {
              session.signOut();
              navigate("/sign-in");
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}
