// The console's entry: public pages (sign up, sign in, password reset) and,
// once signed in, the tenant's screens.
import { StrictMode, useEffect } from "react";
import { createRoot } from "react-dom/client";
import { Route, Switch, useLocation } from "wouter";
import "uplot/dist/uPlot.min.css";
import "./styles.css";
import { useSession } from "./session";
import { Layout } from "./components/Layout";
import { Crash } from "./components/Crash";
import { ForgotPassword, ResetPassword, SignIn, SignUp } from "./pages/Auth";
import { Overview } from "./pages/Overview";
import { Services } from "./pages/Services";
import { Routes } from "./pages/Routes";
import { Consumers } from "./pages/Consumers";
import { Plugins } from "./pages/Plugins";
import { Logs } from "./pages/Logs";
import { Errors } from "./pages/Errors";
import { Settings } from "./pages/Settings";

const PUBLIC = ["/sign-in", "/sign-up", "/forgot-password", "/reset-password"];

function App() {
  const signedIn = useSession() !== null;
  const [location, navigate] = useLocation();
  const isPublic = PUBLIC.includes(location);

  useEffect(() => {
    if (!signedIn && !isPublic) {
      const next = location === "/" ? "" : `?next=${encodeURIComponent(location + window.location.search)}`;
      navigate(`/sign-in${next}`, { replace: true });
    }
  }, [signedIn, isPublic, location, navigate]);

  if (isPublic) {
    return (
      <Crash resetKey={location}>
        <Switch>
          <Route path="/sign-in" component={SignIn} />
          <Route path="/sign-up" component={SignUp} />
          <Route path="/forgot-password" component={ForgotPassword} />
          <Route path="/reset-password" component={ResetPassword} />
        </Switch>
      </Crash>
    );
  }
  if (!signedIn) return null;
  return (
    <Layout>
      <Crash resetKey={location}>
        <Switch>
          <Route path="/" component={Overview} />
          <Route path="/services" component={Services} />
          <Route path="/routes" component={Routes} />
          <Route path="/consumers" component={Consumers} />
          <Route path="/plugins" component={Plugins} />
          <Route path="/logs" component={Logs} />
          <Route path="/errors" component={Errors} />
          <Route path="/settings" component={Settings} />
          <Route>
            <h1>Not found</h1>
            <p>The console has no page at {location}.</p>
          </Route>
        </Switch>
      </Crash>
    </Layout>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
