/**
 * The guard on a tenant's configured SQL: a conservative tokenizer that knows each dialect's
 * strings (PostgreSQL `E''` escapes and `$tag$` dollar quoting, MySQL backslash escapes),
 * quoted identifiers and comments, so every check below sees only real SQL code. Anything it
 * cannot read with certainty is refused rather than guessed. The server side holds the same
 * line independently: one statement on the extended protocol, READ ONLY, statement timeout.
 */

export type SqlDialect = 'postgresql' | 'mysql';

export interface SqlToken {
  kind: 'code' | 'string' | 'ident' | 'comment';
  text: string;
}

export class SqlGuardError extends Error {}

const WORD = /[A-Za-z0-9_$\u0080-\uffff]/;

/** Splits SQL into code, string literals, quoted identifiers and comments; throws on what it cannot read. */
export function tokenizeSql(sql: string, dialect: SqlDialect): SqlToken[] {
  const out: SqlToken[] = [];
  let code = '';
  const flush = () => {
    if (code) out.push({ kind: 'code', text: code });
    code = '';
  };
  const push = (kind: SqlToken['kind'], text: string) => {
    flush();
    out.push({ kind, text });
  };
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    const next = sql[i + 1];
    const prevWord = i > 0 && WORD.test(sql[i - 1]);
    if ((c === '-' && next === '-') || (dialect === 'mysql' && c === '#')) {
      const end = sql.indexOf('\n', i);
      push('comment', sql.slice(i, end === -1 ? sql.length : end));
      i = end === -1 ? sql.length : end;
    } else if (c === '/' && next === '*') {
      if (dialect === 'mysql' && (sql[i + 2] === '!' || sql[i + 2] === '+'))
        throw new SqlGuardError('MySQL executable comments (/*! … */) are not allowed');
      // PostgreSQL block comments nest; MySQL's do not.
      let depth = 1;
      let j = i + 2;
      while (j < sql.length && depth > 0) {
        if (dialect === 'postgresql' && sql[j] === '/' && sql[j + 1] === '*') {
          depth++;
          j += 2;
        } else if (sql[j] === '*' && sql[j + 1] === '/') {
          depth--;
          j += 2;
        } else j++;
      }
      if (depth > 0) throw new SqlGuardError('unterminated comment');
      push('comment', sql.slice(i, j));
      i = j;
    } else if (c === "'" || (dialect === 'mysql' && c === '"')) {
      // E'…' (PostgreSQL) and every MySQL string take backslash escapes.
      const escapes = dialect === 'mysql' || (/[eE]/.test(code.slice(-1)) && !(code.length > 1 && WORD.test(code[code.length - 2])));
      if (dialect === 'postgresql' && /&$/.test(code) && /[uU]&$/.test(code))
        throw new SqlGuardError('U& escaped strings and identifiers are not allowed');
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) throw new SqlGuardError('unterminated string literal');
        if (escapes && sql[j] === '\\') j += 2;
        else if (sql[j] === c && sql[j + 1] === c) j += 2;
        else if (sql[j] === c) break;
        else j++;
      }
      push('string', sql.slice(i, j + 1));
      i = j + 1;
    } else if (c === '"' || (dialect === 'mysql' && c === '`')) {
      if (dialect === 'postgresql' && /[uU]&$/.test(code)) throw new SqlGuardError('U& escaped strings and identifiers are not allowed');
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) throw new SqlGuardError('unterminated quoted identifier');
        if (sql[j] === c && sql[j + 1] === c) j += 2;
        else if (sql[j] === c) break;
        else j++;
      }
      push(
        'ident',
        sql
          .slice(i + 1, j)
          .split(c + c)
          .join(c),
      );
      i = j + 1;
    } else if (
      dialect === 'postgresql' &&
      c === '$' &&
      !prevWord &&
      /^\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/.test(sql.slice(i))
    ) {
      const tag = /^\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/.exec(sql.slice(i))![0];
      const end = sql.indexOf(tag, i + tag.length);
      if (end === -1) throw new SqlGuardError('unterminated dollar-quoted string');
      push('string', sql.slice(i, end + tag.length));
      i = end + tag.length;
    } else {
      code += c;
      i++;
    }
  }
  flush();
  return out;
}

/** Statements that change data, schema, settings or the transaction: none belongs in a lookup. */
const FORBIDDEN_WORDS = new Set([
  'insert',
  'update',
  'delete',
  'merge',
  'truncate',
  'alter',
  'drop',
  'create',
  'grant',
  'revoke',
  'copy',
  'call',
  'execute',
  'prepare',
  'deallocate',
  'listen',
  'notify',
  'unlisten',
  'vacuum',
  'reindex',
  'set',
  'reset',
  'commit',
  'rollback',
  'begin',
  'savepoint',
  'into',
  'outfile',
  'dumpfile',
  'handler',
]);

/**
 * Functions that read files, reach the network, sleep, take locks or read and change settings.
 * The whole `pg_` admin family is refused (pg_read_file, pg_ls_dir, pg_sleep, pg_terminate_backend…),
 * as are large objects (`lo_`) and dblink.
 */
const FORBIDDEN_FUNCTION = /^(pg_|lo_|dblink)/;
const FORBIDDEN_FUNCTIONS = new Set([
  'set_config',
  'current_setting',
  'query_to_xml',
  'query_to_xml_and_xmlschema',
  'query_to_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xml_and_xmlschema',
  'load_file',
  'sleep',
  'benchmark',
  'get_lock',
  'release_lock',
  'release_all_locks',
  'is_free_lock',
  'is_used_lock',
  'master_pos_wait',
  'source_pos_wait',
  'sys_exec',
  'sys_eval',
]);

/** Why the SQL is not one plain read-only SELECT, or undefined when it is. */
export function sqlGuardProblem(sql: string, dialect: SqlDialect): string | undefined {
  let tokens: SqlToken[];
  try {
    tokens = tokenizeSql(sql, dialect);
  } catch (err) {
    if (err instanceof SqlGuardError) return err.message;
    throw err;
  }
  // Words and quoted identifiers in order, comments dropped, strings as one opaque item.
  const items: { word?: string; quoted?: boolean; punct?: string }[] = [];
  for (const t of tokens) {
    if (t.kind === 'comment') continue;
    if (t.kind === 'string') items.push({ punct: "''" });
    else if (t.kind === 'ident') items.push({ word: t.text.toLowerCase(), quoted: true });
    else
      for (const m of t.text.matchAll(/[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*|\$\d+|::|[^\s\w]/g)) {
        const x = m[0];
        items.push(/^[A-Za-z_\u0080-\uffff]/.test(x) ? { word: x.toLowerCase() } : { punct: x });
      }
  }
  // Backslash handling in MySQL strings depends on the server's sql_mode; refuse rather than guess.
  if (dialect === 'mysql' && tokens.some((t) => t.kind === 'string' && t.text.includes('\\')))
    return 'backslashes in MySQL string literals are not allowed';
  const first = items.find((x) => x.word && !x.quoted);
  if (!first || (first.word !== 'select' && first.word !== 'with')) return 'only SELECT (or WITH … SELECT) queries can be configured';
  let end = items.length;
  while (end > 0 && items[end - 1].punct === ';') end--;
  if (items.slice(0, end).some((x) => x.punct === ';')) return 'one statement only';
  for (let k = 0; k < end; k++) {
    const x = items[k];
    if (!x.word) continue;
    if (!x.quoted && FORBIDDEN_WORDS.has(x.word) && items[k - 1]?.punct !== '.')
      return `"${x.word.toUpperCase()}" is not allowed in a lookup query`;
    if (items[k + 1]?.punct === '(' && (FORBIDDEN_FUNCTION.test(x.word) || FORBIDDEN_FUNCTIONS.has(x.word))) {
      return `the function ${x.word}() is not allowed in a lookup query (it reads files, reaches the network, sleeps or changes settings)`;
    }
  }
  if (dialect === 'mysql' && items.some((x) => x.punct === '@')) return 'MySQL user and system variables (@, @@) are not allowed';
  return undefined;
}

/** The `$n` numbers the SQL code uses, in order of appearance (strings, identifiers and comments excluded). */
export function codePlaceholders(sql: string, dialect: SqlDialect): number[] {
  let tokens: SqlToken[];
  try {
    tokens = tokenizeSql(sql, dialect);
  } catch {
    return [];
  }
  return tokens.filter((t) => t.kind === 'code').flatMap((t) => [...t.text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
}

/** MySQL text with `$n` turned into `?` in the code only. */
export function toMysqlPlaceholders(sql: string): string {
  return tokenizeSql(sql, 'mysql')
    .map((t) => (t.kind === 'code' ? t.text.replace(/\$\d+/g, '?') : t.kind === 'ident' ? `\`${t.text.split('`').join('``')}\`` : t.text))
    .join('');
}

/** SQL code with literals emptied, quoted identifiers and comments blanked, for the interpolation checks. */
export function sqlCodeOnly(sql: string, dialect: SqlDialect): { code: string; literals: string[] } {
  const tokens = tokenizeSql(sql, dialect);
  return {
    code: tokens.map((t) => (t.kind === 'code' ? t.text : t.kind === 'string' ? "''" : ' ')).join(''),
    literals: tokens.filter((t) => t.kind === 'string').map((t) => t.text),
  };
}
