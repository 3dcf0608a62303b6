// openid-client 6, unmodified, against the sandbox's Login API (tests/login/test_openid_client.py runs this).
// 1. discovery on http:// (allowInsecureRequests, its documented opt-in), authorization code with PKCE S256 and
//    no nonce (the library then refuses any nonce claim), the browser step done by the sandbox's control plane,
//    the id_token's claims, userinfo with the expected subject;
// 2. CIBA through initiateBackchannelAuthentication and pollBackchannelAuthenticationGrant, approved on the
//    virtual phone (the control plane) while the library polls.
// Prints one JSON line per step.
import * as client from 'openid-client';

const base = process.env.SANDBOX_URL;
const issuer = new URL(`${base}/access-management-1.0/access/`);
const redirectUri = process.env.REDIRECT_URI;
const out = (step, data) => console.log(JSON.stringify({ step, ...data }));

async function control(path, body) {
  const response = await fetch(`${base}${path}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

try {
  const config = await client.discovery(issuer, process.env.CLIENT_ID, process.env.CLIENT_SECRET, undefined,
    { execute: [client.allowInsecureRequests] });
  out('discovery', { issuer: config.serverMetadata().issuer });

  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid name phoneNumber', state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const toPage = await fetch(url, { redirect: 'manual' });
  const loginId = new URL(toPage.headers.get('location'), base).searchParams.get('login');
  const { location } = await control('/_sandbox/login/approve', { loginId, phoneNumber: process.env.PHONE });
  const tokens = await client.authorizationCodeGrant(config, new URL(location),
    { pkceCodeVerifier: verifier, expectedState: state });
  const claims = tokens.claims();
  const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  out('code', { sub: claims.sub, nonce: 'nonce' in claims, aud: claims.aud, userinfo: info,
    scope: tokens.scope, refresh: 'refresh_token' in tokens });

  const started = await client.initiateBackchannelAuthentication(config, {
    scope: 'openid name', login_hint: `urn:msisdn:${process.env.PHONE}`, binding_message: 'SHOP-42',
  });
  setTimeout(() => control('/_sandbox/login/ciba/approve', { auth_req_id: started.auth_req_id })
    .catch((error) => out('error', { message: String(error) })), 1500);
  const ciba = await client.pollBackchannelAuthenticationGrant(config, started);
  const cibaClaims = ciba.claims();
  out('ciba', { sub: cibaClaims.sub, auth_req_id: cibaClaims.auth_req_id === started.auth_req_id,
    interval: started.interval, name: (await client.fetchUserInfo(config, ciba.access_token, cibaClaims.sub)).name });
} catch (error) {
  out('error', { message: String(error), code: error.code, cause: String(error.cause ?? '') });
  process.exitCode = 1;
}
