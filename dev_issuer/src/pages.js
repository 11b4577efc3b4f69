/**
 * Plain HTML pages: sign-in, registration, sign-out. Every form is an ordinary
 * `application/x-www-form-urlencoded` POST with its fields inside the <form>, so a test HTTP
 * client can submit it without running JavaScript.
 */
const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export const escapeHtml = (value) => String(value ?? '').replace(/["&'<>]/g, (c) => ESCAPES[c]);

const STYLE = 'body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}'
  + 'label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}'
  + 'button{margin-top:1rem;padding:.5rem 1rem}.error{color:#b00020}.note{color:#555;font-size:.9rem}';

const page = (title, body) => `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${body}
<p class="note">Development issuer: not Logto, for local development and tests only.</p>
</body>
</html>
`;

const errorLine = (error) => (error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : '');

/** The sign-in form: identifier (username or email) and password. */
export const signInPage = ({ uid, clientName, identifier = '', error }) => page('Sign in', `
<p>to continue to ${escapeHtml(clientName)}</p>
${errorLine(error)}
<form id="sign-in" method="post" action="/interaction/${escapeHtml(uid)}/login">
<label for="identifier">Username or email</label>
<input id="identifier" name="identifier" autocomplete="username" required value="${escapeHtml(identifier)}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p><a href="/interaction/${escapeHtml(uid)}/register">Create an account</a></p>
<p><a href="/interaction/${escapeHtml(uid)}/abort">Cancel</a></p>`);

/** The registration form: username, password, optional email and name. */
export const registerPage = ({ uid, clientName, values = {}, error }) => page('Create your account', `
<p>to continue to ${escapeHtml(clientName)}</p>
${errorLine(error)}
<form id="register" method="post" action="/interaction/${escapeHtml(uid)}/register">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="${escapeHtml(values.username)}">
<label for="password">Password (8 characters or more)</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="8">
<label for="email">Email (optional)</label>
<input id="email" name="email" type="email" autocomplete="email" value="${escapeHtml(values.email)}">
<label for="name">Name (optional)</label>
<input id="name" name="name" autocomplete="name" value="${escapeHtml(values.name)}">
<button type="submit">Create account</button>
</form>
<p><a href="/interaction/${escapeHtml(uid)}">I already have an account</a></p>`);

export const messagePage = (title, message) => page(title, `<p>${escapeHtml(message)}</p>`);

/**
 * oidc-provider's `logoutSource`: Logto's page submits the form on load with `logout=yes`;
 * here the field and a button sit inside the form too, so no script is needed.
 */
export const renderLogout = async (ctx, form) => {
  const inner = '<input type="hidden" name="logout" value="yes"/>'
    + '<button type="submit" autofocus>Sign out</button></form>';
  ctx.type = 'html';
  ctx.body = page('Sign out', `${form.replace('</form>', inner)}
<script>document.getElementById('op.logoutForm').submit();</script>`);
};

export const renderLogoutSuccess = async (ctx) => {
  ctx.type = 'html';
  ctx.body = messagePage('Signed out', 'You have been signed out.');
};
