/* Starts Swagger UI (vendored in /static/vendor/swagger-ui) on the schema named by
 * #swagger-ui's data-spec-url: a file, not an inline script, so that the CSP needs no
 * 'unsafe-inline'. No validator badge: it would call validator.swagger.io. */
(function start() {
  const box = document.getElementById('swagger-ui');
  window.ui = window.SwaggerUIBundle({
    url: box.dataset.specUrl,
    domNode: box,
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIStandalonePreset],
  });
}());
