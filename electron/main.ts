/**
 * Electron main: thin, as in VS Code. It owns the window, the menus, the native dialogs and the
 * engine's lifecycle, and nothing heavy: the engine (all tensors and jobs) runs in a utility
 * process, and main hands the renderer a MessagePort to it, then steps out of the data path.
 *
 * Crashes are handled in one place (`onEngineExit`): the engine is restarted, the renderer gets a
 * fresh port with a notice, and runs the dead engine was executing read as interrupted (their pid
 * is gone), resumable from their last checkpoint.
 *
 * Security: contextIsolation, sandbox, no nodeIntegration, a strict CSP on every response of the
 * app's own scheme, navigation and new windows blocked (no link opens anything outside the app),
 * every permission request denied, a preload that exposes only the port hand-off, no DevTools in
 * the packaged app, and Electron's fuses set by electron-builder (electron-builder.yml). The
 * engine may read only the project and the folders the user picked in "Grant Folder Access…".
 */
import { app, BrowserWindow, dialog, Menu, MessageChannelMain, protocol, session, shell, utilityProcess, type UtilityProcess } from 'electron';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(here, '..');
const RENDERER_DIR = path.join(ROOT, 'dist-renderer');
const SCHEME = 'normlab';
const APP_URL = `${SCHEME}://app/index.html`;

/** Same policy as browser mode (engine/server/serve.ts), minus the WebSocket: the port replaces it. */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

protocol.registerSchemesAsPrivileged([{ scheme: SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

// ---- settings: the last project folder -------------------------------------------------------

function settingsFile(): string {
  return path.join(app.getPath('userData'), 'settings.json');
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

interface Settings {
  project?: string;
  /** Folders the user granted the engine (besides the project) in the Grant Folder Access dialog. */
  granted?: string[];
}

function readSettings(): Settings {
  try {
    return JSON.parse(fs.readFileSync(settingsFile(), 'utf8')) as Settings;
  } catch {
    return {}; // first launch
  }
}

function writeSettings(patch: Settings): void {
  try {
    fs.mkdirSync(path.dirname(settingsFile()), { recursive: true });
    fs.writeFileSync(settingsFile(), JSON.stringify({ ...readSettings(), ...patch }));
  } catch {
    /* not fatal */
  }
}

function initialProject(): string {
  const fromArg = argValue('--project') ?? process.env.NORMLAB_PROJECT;
  if (fromArg) return path.resolve(fromArg);
  const s = readSettings();
  if (s.project && fs.existsSync(s.project)) return s.project;
  return path.join(app.getPath('documents'), 'NormLab');
}

function rememberProject(dir: string): void {
  writeSettings({ project: dir });
}

// ---- the engine utility process -----------------------------------------------------------------

let win: BrowserWindow | null = null;
let engine: UtilityProcess | null = null;
let projectDir = '';
let granted: string[] = [];
let quitting = false;
let stopping = false;
/** Set when the engine reported that another process has the project open (see engine/engine-process.ts). */
let busyProject: string | null = null;
const crashTimes: number[] = [];

interface PortInfo {
  project: string;
  restarted?: { code: number; message: string };
}

function forkEngine(): void {
  const backend = argValue('--backend');
  const allow = granted.flatMap((dir) => ['--allow', dir]);
  const proc = utilityProcess.fork(path.join(here, 'engine-bootstrap.js'), ['--project', projectDir, ...(backend ? ['--backend', backend] : []), ...allow], {
    serviceName: 'NormLab engine',
    stdio: 'inherit',
  });
  engine = proc;
  proc.on('message', (m: { type?: string; message?: string }) => {
    if (m?.type === 'project-busy') busyProject = m.message ?? 'the project is open in another process';
  });
  proc.on('exit', (code) => onEngineExit(proc, code));
}

function startEngine(restarted?: PortInfo['restarted']): void {
  forkEngine();
  connectRenderer({ project: projectDir, restarted });
}

/** Hand the renderer a fresh port to the engine (on start, restart and every page load). */
function connectRenderer(info: PortInfo): void {
  if (!engine || !win) return;
  const { port1, port2 } = new MessageChannelMain();
  engine.postMessage({ type: 'connect', restarted: info.restarted ?? null }, [port1]);
  win.webContents.postMessage('normlab:engine-port', info, [port2]);
}

/** The one crash handler: restart with a notice; stop trying after 3 crashes in a minute. */
function onEngineExit(proc: UtilityProcess, code: number): void {
  if (proc !== engine) return;
  engine = null;
  if (quitting || stopping) return;
  if (busyProject) return void projectBusy(busyProject);
  const now = Date.now();
  crashTimes.push(now);
  while (crashTimes.length && now - crashTimes[0] > 60_000) crashTimes.shift();
  const message = `The engine stopped unexpectedly (exit code ${code}) and was restarted. Runs it was executing are marked interrupted; resume them from their last checkpoint.`;
  if (crashTimes.length > 3) {
    dialog.showErrorBox(
      'NormLab engine',
      `The engine crashed ${crashTimes.length} times within a minute (last exit code ${code}); it was not restarted. Restart NormLab.`,
    );
    return;
  }
  startEngine({ code, message });
}

/** The engine found the project open in another process (a `normlab serve`, another window): offer another one. */
async function projectBusy(message: string): Promise<void> {
  busyProject = null;
  const answer = await dialog.showMessageBox({
    type: 'warning',
    buttons: ['Open Another Project…', 'Quit'],
    defaultId: 0,
    cancelId: 1,
    message: 'This project is already open',
    detail: message,
  });
  if (answer.response === 1) return app.quit();
  await openProjectDialog();
  if (!engine) app.quit(); // no other project was chosen
}

async function stopEngine(): Promise<void> {
  const proc = engine;
  if (!proc) return;
  stopping = true;
  await new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill();
  });
  stopping = false;
}

async function switchProject(dir: string): Promise<void> {
  projectDir = dir;
  rememberProject(dir);
  await stopEngine();
  startEngine();
  win?.setTitle(`NormLab — ${dir}`);
}

// ---- dialogs --------------------------------------------------------------------------------------

async function openProjectDialog(): Promise<void> {
  if (!win) return;
  const r = await dialog.showOpenDialog(win, {
    title: 'Open a NormLab project folder',
    properties: ['openDirectory', 'createDirectory'],
    defaultPath: projectDir,
  });
  if (r.canceled || !r.filePaths[0]) return;
  const answer = await dialog.showMessageBox(win, {
    type: 'question',
    buttons: ['Open', 'Cancel'],
    defaultId: 0,
    cancelId: 1,
    message: `Open ${r.filePaths[0]}?`,
    detail: 'The engine restarts on the new project; a run in progress is interrupted and can be resumed later from its last checkpoint.',
  });
  if (answer.response === 0) await switchProject(r.filePaths[0]);
}

/** Copy a model folder (config.json + model.safetensors, HF/timm names) into <project>/models/. */
async function importCheckpointDialog(): Promise<void> {
  if (!win) return;
  const r = await dialog.showOpenDialog(win, { title: 'Import a checkpoint folder (config.json + model.safetensors)', properties: ['openDirectory'] });
  if (r.canceled || !r.filePaths[0]) return;
  const src = r.filePaths[0];
  const missing = ['config.json', 'model.safetensors'].filter((f) => !fs.existsSync(path.join(src, f)));
  if (missing.length) {
    dialog.showErrorBox('Import checkpoint', `${src} has no ${missing.join(' or ')}; a checkpoint folder holds config.json and model.safetensors.`);
    return;
  }
  const dest = path.join(projectDir, 'models', path.basename(src));
  if (fs.existsSync(dest)) {
    dialog.showErrorBox('Import checkpoint', `${dest} already exists; rename the folder or remove the old copy.`);
    return;
  }
  fs.mkdirSync(dest, { recursive: true });
  for (const f of fs.readdirSync(src)) if (fs.statSync(path.join(src, f)).isFile()) fs.copyFileSync(path.join(src, f), path.join(dest, f));
  await dialog.showMessageBox(win, {
    type: 'info',
    message: 'Checkpoint imported',
    detail: `Copied to ${dest}. Use this path as model.init_from (LM runs) or model path of a method run.`,
  });
}

/** Let the engine read a folder outside the project (data, models): the renderer cannot name one itself. */
async function grantFolderDialog(): Promise<void> {
  if (!win) return;
  const r = await dialog.showOpenDialog(win, { title: 'Grant NormLab access to a folder (data sets, model folders)', properties: ['openDirectory'] });
  if (r.canceled || !r.filePaths[0]) return;
  const dir = r.filePaths[0];
  if (!granted.includes(dir)) granted = [...granted, dir];
  writeSettings({ granted });
  engine?.postMessage({ type: 'grant', dir });
}

function buildMenu(): void {
  const template: Electron.MenuItemConstructorOptions[] = [
    {
      label: 'File',
      submenu: [
        { label: 'Open Project Folder…', accelerator: 'CmdOrCtrl+O', click: () => void openProjectDialog() },
        { label: 'Import Checkpoint…', accelerator: 'CmdOrCtrl+I', click: () => void importCheckpointDialog() },
        { label: 'Grant Folder Access…', click: () => void grantFolderDialog() },
        { label: 'Show Project in File Manager', click: () => void shell.openPath(projectDir) },
        { type: 'separator' },
        { role: 'quit' },
      ],
    },
    { role: 'editMenu' },
    {
      label: 'View',
      submenu: [
        { role: 'reload' },
        // DevTools only in development: the packaged app has neither the item nor the shortcut.
        ...(app.isPackaged ? [] : [{ role: 'toggleDevTools' } as const]),
        { type: 'separator' },
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
      ],
    },
    {
      label: 'Engine',
      submenu: [
        {
          label: 'Restart Engine',
          click: async () => {
            await stopEngine();
            startEngine();
          },
        },
      ],
    },
  ];
  Menu.setApplicationMenu(Menu.buildFromTemplate(template));
}

// ---- the window -----------------------------------------------------------------------------------

function serveRenderer(): void {
  protocol.handle(SCHEME, (req) => {
    const url = new URL(req.url);
    const rel = path.normalize(decodeURIComponent(url.pathname)).replace(/^[/\\]+/, '') || 'index.html';
    const file = path.join(RENDERER_DIR, rel);
    const headers = { 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff' };
    if (url.host !== 'app' || !file.startsWith(RENDERER_DIR + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      const body = fs.existsSync(path.join(RENDERER_DIR, 'index.html')) ? 'not found' : 'the renderer is not built: run `npm run build:renderer`';
      return new Response(body, { status: 404, headers: { ...headers, 'Content-Type': 'text/plain' } });
    }
    return new Response(fs.readFileSync(file), { headers: { ...headers, 'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream' } });
  });
}

function createWindow(): void {
  win = new BrowserWindow({
    width: 1440,
    height: 920,
    minWidth: 960,
    minHeight: 600,
    title: `NormLab — ${projectDir}`,
    backgroundColor: '#14161a',
    show: false,
    webPreferences: {
      preload: path.join(here, 'preload.js'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      spellcheck: false,
      devTools: !app.isPackaged,
    },
  });
  const wc = win.webContents;
  // Navigation is blocked; new windows are denied for every web contents (below), and no link
  // is handed to the system browser: the renderer links to nothing outside the app.
  wc.on('will-navigate', (e, url) => {
    if (url !== wc.getURL()) e.preventDefault();
  });
  wc.on('will-attach-webview', (e) => e.preventDefault());
  // Every page load (first load, reload) gets a fresh engine port.
  wc.on('did-finish-load', () => connectRenderer({ project: projectDir }));
  win.once('ready-to-show', () => win?.show());
  win.on('closed', () => (win = null));
  void win.loadURL(APP_URL);
}

app.on('web-contents-created', (_e, contents) => {
  contents.on('will-navigate', (ev, url) => {
    if (!url.startsWith(`${SCHEME}://app/`)) ev.preventDefault();
  });
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
});

app.whenReady().then(() => {
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  serveRenderer();
  projectDir = initialProject();
  granted = (readSettings().granted ?? []).filter((d) => fs.existsSync(d));
  fs.mkdirSync(projectDir, { recursive: true });
  buildMenu();
  // The engine is forked before the window loads; the page's load hands it the first port.
  forkEngine();
  createWindow();
});

app.on('before-quit', () => {
  quitting = true;
  engine?.kill();
});

app.on('window-all-closed', () => app.quit());
