// Render a documentation page in jsdom (a standards DOM, github.com/jsdom/jsdom) with its scripts running,
// loading nothing from another origin: the offline /docs and /redoc must render from this service alone.
// Usage: node render.mjs URL SELECTOR TIMEOUT_MS
// Prints one JSON line: rendered (the selector holds text), text, loaded (same-origin paths), foreign
// (every other URL the page asked for, refused), errors (jsdom's script errors).
import { JSDOM, ResourceLoader, VirtualConsole } from "jsdom";

const [url, selector, timeoutArg] = process.argv.slice(2);
const origin = new URL(url).origin;
const foreign = [];
const loaded = [];
const errors = [];

class SameOriginOnly extends ResourceLoader {
  fetch(resource, options) {
    if (new URL(resource).origin !== origin) {
      foreign.push(resource);
      return null;
    }
    loaded.push(new URL(resource).pathname);
    return super.fetch(resource, options);
  }
}

const virtualConsole = new VirtualConsole();
virtualConsole.on("jsdomError", (error) => errors.push(String(error.message || error).slice(0, 300)));
const dom = await JSDOM.fromURL(url, {
  runScripts: "dangerously",
  resources: new SameOriginOnly(),
  pretendToBeVisual: true,
  virtualConsole,
  // jsdom has XMLHttpRequest but no fetch: lend Node's, held to the same origin as every other load.
  beforeParse(window) {
    window.fetch = (input, init) => {
      const target = new URL(typeof input === "string" ? input : input.url, url);
      if (target.origin !== origin) {
        foreign.push(target.href);
        return Promise.reject(new TypeError(`refused: ${target.href} is not ${origin}`));
      }
      loaded.push(target.pathname);
      return fetch(target, init);
    };
    // Nor Web Workers, which ReDoc starts only for its search index: a worker that never answers lets the
    // page render (the search box itself is not exercised here).
    window.Worker = class {
      postMessage() {}
      terminate() {}
      addEventListener() {}
      removeEventListener() {}
    };
    window.URL.createObjectURL = () => "blob:not-supported";
    window.Headers = Headers;
    window.Request = Request;
    window.Response = Response;
  },
});
const deadline = Date.now() + Number(timeoutArg || 10000);
let found = null;
while (Date.now() < deadline) {
  found = dom.window.document.querySelector(selector);
  if (found && found.textContent.trim()) break;
  await new Promise((resolve) => setTimeout(resolve, 100));
}
console.log(JSON.stringify({
  rendered: Boolean(found && found.textContent.trim()),
  text: found ? found.textContent.trim().slice(0, 20000) : null,
  loaded, foreign, errors: errors.slice(0, 5),
}));
dom.window.close();
process.exit(0);
