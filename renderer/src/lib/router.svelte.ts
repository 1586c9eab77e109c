/** Hash routes: #/ (runs), #/new[/kind[/from/<run id>]] (a form prefilled from a run), #/run/<id>, #/compare[/<id>,<id>...]. */
export type Route =
  { view: 'runs' } | { view: 'new'; kind: string | null; from: string | null } | { view: 'run'; id: string } | { view: 'compare'; ids: string[] };

function parse(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'new') return { view: 'new', kind: parts[1] ?? null, from: parts[2] === 'from' ? (parts[3] ?? null) : null };
  if (parts[0] === 'run' && parts[1]) return { view: 'run', id: parts[1] };
  if (parts[0] === 'compare') return { view: 'compare', ids: (parts[1] ?? '').split(',').filter(Boolean) };
  return { view: 'runs' };
}

class Router {
  route = $state<Route>(parse(location.hash));
  constructor() {
    window.addEventListener('hashchange', () => (this.route = parse(location.hash)));
  }
  go(path: string): void {
    location.hash = path;
  }
}

export const router = new Router();

export const href = {
  runs: () => '#/',
  newRun: (kind?: string) => (kind ? `#/new/${encodeURIComponent(kind)}` : '#/new'),
  rerun: (kind: string, from: string) => `#/new/${encodeURIComponent(kind)}/from/${encodeURIComponent(from)}`,
  run: (id: string) => `#/run/${encodeURIComponent(id)}`,
  compare: (ids: string[] = []) => `#/compare/${ids.map(encodeURIComponent).join(',')}`,
};
