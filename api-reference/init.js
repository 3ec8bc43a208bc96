// Renders the control plane's own OpenAPI document; "Try it out" sends
// requests to this control plane, with the tenant token given under
// "Authorize".
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  persistAuthorization: false,
  // Nothing is sent anywhere but this control plane.
  validatorUrl: null,
});
