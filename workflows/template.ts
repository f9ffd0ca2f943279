/**
 * Reply templates: `{{name}}` reads the lookup parameters, then the first result row's
 * columns / JSON fields (dotted paths reach nested fields). Pure, so workflows can use it.
 */
export function renderTemplate(template: string, params: Record<string, string>, row: Record<string, unknown> | undefined): string {
  return template.replace(/\{\{\s*([A-Za-z_][\w.]*)\s*\}\}/g, (_m, path: string) => {
    const value = lookupPath(row ?? {}, path) ?? params[path];
    if (value === undefined || value === null) return '';
    return typeof value === 'object' ? JSON.stringify(value) : String(value);
  });
}

function lookupPath(obj: Record<string, unknown>, path: string): unknown {
  let cur: unknown = obj;
  for (const key of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}
