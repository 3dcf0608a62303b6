// Load with `node --import ./rewrite-hosts.mjs app.mjs`.
//
// Why: the official SDK hard-codes https://apitest.vipps.no and https://api.vipps.no, but it calls
// globalThis.fetch at request time. Wrapping fetch sends its requests to the sandbox instead, with
// no change to the SDK or the app. The sandbox tells the environments apart by port.
//   SANDBOX_TEST_URL  where apitest.vipps.no goes (default http://127.0.0.1:8080)
//   SANDBOX_PROD_URL  where api.vipps.no goes     (default http://127.0.0.1:8081)

const HOSTS = {
  "https://apitest.vipps.no": process.env.SANDBOX_TEST_URL || "http://127.0.0.1:8080",
  "https://api.vipps.no": process.env.SANDBOX_PROD_URL || "http://127.0.0.1:8081",
};

const realFetch = globalThis.fetch;

function rewrite(url) {
  for (const [from, to] of Object.entries(HOSTS)) {
    if (url === from || url.startsWith(from + "/") || url.startsWith(from + "?")) {
      return to.replace(/\/+$/, "") + url.slice(from.length);
    }
  }
  return null;
}

globalThis.fetch = async function sandboxFetch(input, init) {
  const url = input instanceof Request ? input.url : String(input);
  const target = rewrite(url);
  if (target === null) return realFetch(input, init);
  if (!(input instanceof Request)) return realFetch(target, init);
  // The SDK passes a Request: copy it as-is (method, headers, body) onto the new URL.
  const body = input.body === null ? undefined : await input.arrayBuffer();
  return realFetch(new Request(target, {
    method: input.method, headers: input.headers, body, redirect: input.redirect, signal: input.signal,
  }), init);
};
