// What a screen shows when it fails to render (a bug, not a failed
// request: those show the API's message): the error, and a way on.
import { Component, type ErrorInfo, type ReactNode } from "react";

interface State {
  error?: Error;
}

export class Crash extends Component<{ children: ReactNode; resetKey: string }, State> {
  state: State = {};

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  componentDidUpdate(previous: { resetKey: string }) {
    // Another page gets its own chance.
    if (previous.resetKey !== this.props.resetKey && this.state.error) this.setState({ error: undefined });
  }

  componentDidCatch(error: Error, info: ErrorInfo) {
    console.error("console screen failed", error, info.componentStack);
  }

  render() {
    if (!this.state.error) return this.props.children;
    return (
      <div className="problem" role="alert">
        <strong>This screen failed to show: </strong>
        {this.state.error.message}.{" "}
        <button type="button" onClick={() => window.location.reload()}>
          Reload
        </button>
      </div>
    );
  }
}
