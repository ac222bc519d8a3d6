import { useState } from 'react';
import { login, type Session } from '../api/session';
import { APIError, errorText } from '../api/http';

export default function Login({ onLogin }: { onLogin: (s: Session) => void }) {
  const [user, setUser] = useState('admin');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      onLogin(await login(user, password));
    } catch (err) {
      if (err instanceof APIError && err.status === 401) setError('Wrong user name or password.');
      else if (err instanceof APIError && err.status === 429) setError('Too many attempts. Wait a minute and try again.');
      else setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login">
      <form className="login-box card" onSubmit={submit} aria-label="Log in">
        <h1>nx-watcher</h1>
        <label>
          User
          <input name="user" autoComplete="username" value={user} onChange={(e) => setUser(e.target.value)} autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        {error && (
          <div className="error" role="alert" data-testid="login-error">
            {error}
          </div>
        )}
        <button className="btn primary" type="submit" disabled={busy}>
          Log in
        </button>
      </form>
    </main>
  );
}
