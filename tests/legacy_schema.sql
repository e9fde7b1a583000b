-- The legacy orchestrator schema, before the session-thread migration: no threads,
-- thread_messages or migrations tables: the DDL of the orchestrator's legacy-database generator
-- (make_legacy_db.py), copied here so that the tests carry everything they need.
--
-- Sections start with "-- section: NAME"; legacy.py runs them in this order:
--   flavour pre:   sessions-pre, common
--   flavour final: sessions-final, common, final-extra
-- `pre` is the sessions table as first created (ampPrompt NOT NULL) with contextIncluded
-- appended by ALTER TABLE; `final` is the later layout (ampPrompt nullable; mode,
-- autoCommit, ampMode) plus batch_items.threadId.

-- section: sessions-pre
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  ampPrompt TEXT NOT NULL,
  followUpPrompts TEXT,
  repoRoot TEXT NOT NULL,
  baseBranch TEXT NOT NULL,
  branchName TEXT NOT NULL,
  worktreePath TEXT NOT NULL,
  status TEXT NOT NULL,
  scriptCommand TEXT,
  modelOverride TEXT,
  threadId TEXT,
  createdAt TEXT NOT NULL,
  lastRun TEXT,
  notes TEXT
);
ALTER TABLE sessions ADD COLUMN contextIncluded BOOLEAN;

-- section: sessions-final
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  ampPrompt TEXT,
  followUpPrompts TEXT,
  repoRoot TEXT NOT NULL,
  baseBranch TEXT NOT NULL,
  branchName TEXT NOT NULL,
  worktreePath TEXT NOT NULL,
  status TEXT NOT NULL,
  scriptCommand TEXT,
  modelOverride TEXT,
  threadId TEXT,
  createdAt TEXT NOT NULL,
  lastRun TEXT,
  notes TEXT,
  contextIncluded BOOLEAN,
  mode TEXT DEFAULT 'async',
  autoCommit BOOLEAN DEFAULT 0,
  ampMode TEXT DEFAULT 'production'
);

-- section: common
CREATE TABLE IF NOT EXISTS iterations (
  id TEXT PRIMARY KEY,
  sessionId TEXT NOT NULL,
  startTime TEXT NOT NULL,
  endTime TEXT,
  commitSha TEXT,
  changedFiles INTEGER NOT NULL DEFAULT 0,
  testResult TEXT,
  testExitCode INTEGER,
  tokenUsage INTEGER,
  promptTokens INTEGER,
  completionTokens INTEGER,
  totalTokens INTEGER,
  model TEXT,
  ampVersion TEXT,
  exitCode INTEGER,
  ampArgs TEXT,
  output TEXT,
  cliToolUsageCount INTEGER,
  cliErrorCount INTEGER,
  cliLogDurationMs INTEGER,
  FOREIGN KEY(sessionId) REFERENCES sessions(id)
);
CREATE TABLE IF NOT EXISTS tool_calls (
  id TEXT PRIMARY KEY,
  sessionId TEXT NOT NULL,
  iterationId TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  toolName TEXT NOT NULL,
  argsJson TEXT NOT NULL,
  success BOOLEAN NOT NULL,
  durationMs INTEGER,
  rawJson TEXT,
  FOREIGN KEY(sessionId) REFERENCES sessions(id),
  FOREIGN KEY(iterationId) REFERENCES iterations(id)
);
CREATE TABLE IF NOT EXISTS merge_history (
  id TEXT PRIMARY KEY,
  sessionId TEXT NOT NULL,
  startedAt TEXT NOT NULL,
  finishedAt TEXT,
  baseBranch TEXT NOT NULL,
  mode TEXT NOT NULL,
  result TEXT NOT NULL,
  conflictFiles TEXT,
  squashMessage TEXT,
  FOREIGN KEY(sessionId) REFERENCES sessions(id)
);
CREATE TABLE IF NOT EXISTS batches (
  runId TEXT PRIMARY KEY,
  createdAt TEXT NOT NULL,
  defaultsJson TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_items (
  id TEXT PRIMARY KEY,
  runId TEXT NOT NULL,
  sessionId TEXT,
  repo TEXT NOT NULL,
  prompt TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT,
  startedAt TEXT,
  finishedAt TEXT,
  model TEXT,
  iterSha TEXT,
  tokensTotal INTEGER,
  toolCalls INTEGER,
  FOREIGN KEY(runId) REFERENCES batches(runId),
  FOREIGN KEY(sessionId) REFERENCES sessions(id)
);
CREATE TABLE IF NOT EXISTS swebench_runs (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  casesDir TEXT NOT NULL,
  createdAt TEXT NOT NULL,
  total INTEGER NOT NULL DEFAULT 0,
  completed INTEGER NOT NULL DEFAULT 0,
  passed INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'running'
);
CREATE TABLE IF NOT EXISTS swebench_case_results (
  runId TEXT NOT NULL,
  caseId TEXT NOT NULL,
  sessionId TEXT NOT NULL,
  status TEXT NOT NULL,
  iterations INTEGER NOT NULL DEFAULT 0,
  wallTimeSec REAL NOT NULL DEFAULT 0,
  PRIMARY KEY(runId, caseId),
  FOREIGN KEY(runId) REFERENCES swebench_runs(id),
  FOREIGN KEY(sessionId) REFERENCES sessions(id)
);
CREATE TABLE IF NOT EXISTS stream_events (
  id TEXT PRIMARY KEY,
  sessionId TEXT NOT NULL,
  type TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  data TEXT NOT NULL,
  FOREIGN KEY(sessionId) REFERENCES sessions(id)
);

-- section: final-extra
ALTER TABLE batch_items ADD COLUMN threadId TEXT;
