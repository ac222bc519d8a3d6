// A lazy wrapper: a plain textarea renders at once (usable, and what the
// first paint shows), CodeMirror replaces it when its chunk arrives.
import { lazy, Suspense } from 'react';
import type { CodeEditorProps } from './CodeEditor';

const CodeEditor = lazy(() => import('./CodeEditor'));

function Fallback({ value, onChange, onRun, placeholder, ariaLabel, language }: CodeEditorProps) {
  return (
    <textarea
      className="code-editor-fallback"
      aria-label={ariaLabel ?? `${language} query`}
      value={value}
      placeholder={placeholder}
      rows={1}
      onChange={(e) => onChange(e.target.value)}
      onKeyDown={(e) => {
        if (e.key === 'Enter' && !e.shiftKey) {
          e.preventDefault();
          onRun();
        }
      }}
    />
  );
}

export default function QueryEditor(props: CodeEditorProps) {
  return (
    <Suspense fallback={<Fallback {...props} />}>
      <CodeEditor {...props} />
    </Suspense>
  );
}
