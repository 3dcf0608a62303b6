// Load with `node --import ./env-proxy.mjs app.mjs`.
//
// Node 20's fetch (undici, bundled) does not read HTTPS_PROXY by itself. undici's own EnvHttpProxyAgent does
// (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), and setGlobalDispatcher makes every fetch of the process use it: the
// official SDK's requests to https://apitest.vipps.no and https://api.vipps.no then go through the sandbox's
// proxy (vipps-sandbox serve --proxy-port), and NODE_EXTRA_CA_CERTS makes Node trust the sandbox's CA.
// No URL is rewritten: this is what any Node app can add to its start command.

import { EnvHttpProxyAgent, setGlobalDispatcher } from "undici";

setGlobalDispatcher(new EnvHttpProxyAgent());
