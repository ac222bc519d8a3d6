// The query editor: CodeMirror 6 with PromQL (completion from our own
// /api/v1), LogQL or TraceQL highlighting. Loaded lazily (see QueryEditor),
// so CodeMirror stays out of the initial bundle. Enter runs the query,
// Shift+Enter inserts a newline.
import { useEffect, useRef } from 'react';
import { EditorView, keymap, placeholder as placeholderExt } from '@codemirror/view';
import { EditorState, Prec, type Extension } from '@codemirror/state';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { autocompletion, closeBrackets, completionKeymap } from '@codemirror/autocomplete';
import { HighlightStyle, LRLanguage, LanguageSupport, syntaxHighlighting, bracketMatching } from '@codemirror/language';
import { styleTags, tags as t } from '@lezer/highlight';
import { PromQLExtension } from '@prometheus-io/codemirror-promql';
import { parser as logqlParser } from '@grafana/lezer-logql';
import { parser as traceqlParser } from '@grafana/lezer-traceql';

export type QueryLanguage = 'promql' | 'logql' | 'traceql';

export interface CodeEditorProps {
  language: QueryLanguage;
  value: string;
  onChange: (v: string) => void;
  onRun: () => void;
  placeholder?: string;
  ariaLabel?: string;
}

const highlight = HighlightStyle.define([
  { tag: t.string, color: 'var(--hl-string)' },
  { tag: t.number, color: 'var(--hl-number)' },
  { tag: [t.keyword, t.operatorKeyword], color: 'var(--hl-keyword)', fontWeight: '600' },
  { tag: t.function(t.variableName), color: 'var(--hl-function)' },
  { tag: [t.labelName, t.attributeName, t.propertyName], color: 'var(--hl-label)' },
  { tag: t.operator, color: 'var(--hl-operator)' },
  { tag: t.lineComment, color: 'var(--hl-comment)', fontStyle: 'italic' },
  { tag: t.variableName, color: 'var(--fg)' },
]);

const logql = LRLanguage.define({
  name: 'logql',
  parser: logqlParser.configure({
    props: [
      styleTags({
        String: t.string,
        Number: t.number,
        Duration: t.number,
        Bytes: t.number,
        Identifier: t.labelName,
        LineComment: t.lineComment,
        'Json Logfmt Unpack Pattern Regexp Unwrap LabelFormat LineFormat Decolorize Drop Keep By Without And Or Unless Offset Bool On Ignoring':
          t.keyword,
        'Sum Avg Count Max Min Stddev Stdvar Bottomk Topk Sort Sort_Desc Rate CountOverTime BytesRate BytesOverTime SumOverTime AvgOverTime MaxOverTime MinOverTime QuantileOverTime RateCounter AbsentOverTime FirstOverTime LastOverTime StddevOverTime StdvarOverTime':
          t.function(t.variableName),
        'Eq Neq Re Nre PipeExact PipeMatch PipePattern Npa Pipe Gtr Gte Lss Lte Eql': t.operator,
      }),
    ],
  }),
  languageData: { commentTokens: { line: '#' } },
});

const traceql = LRLanguage.define({
  name: 'traceql',
  parser: traceqlParser.configure({
    props: [
      styleTags({
        String: t.string,
        'Integer Float Duration': t.number,
        'AttributeField Identifier': t.attributeName,
        'IntrinsicField Resource Span Parent Event Link Instrumentation': t.propertyName,
        'LineComment BlockComment': t.lineComment,
        'Aggregate MetricsAggregatorFunctions With': t.function(t.variableName),
        'And Or Pipe Gt Lt Desc Anc ComparisonOp FieldOp': t.operator,
      }),
    ],
  }),
});

function languageExtension(lang: QueryLanguage): Extension {
  switch (lang) {
    case 'promql': {
      const base = new URL('.', document.baseURI).toString().replace(/\/$/, '');
      return new PromQLExtension().activateLinter(false).setComplete({ remote: { url: base, cache: { initialMetricList: [] } } }).asExtension();
    }
    case 'logql':
      return new LanguageSupport(logql);
    case 'traceql':
      return new LanguageSupport(traceql);
  }
}

export default function CodeEditor({ language, value, onChange, onRun, placeholder, ariaLabel }: CodeEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const cbs = useRef({ onChange, onRun });
  cbs.current = { onChange, onRun };

  useEffect(() => {
    if (!host.current) return;
    const v = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: value,
        extensions: [
          history(),
          bracketMatching(),
          closeBrackets(),
          autocompletion(),
          syntaxHighlighting(highlight),
          languageExtension(language),
          placeholderExt(placeholder ?? ''),
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({ 'aria-label': ariaLabel ?? `${language} query`, 'data-testid': 'query-editor' }),
          Prec.highest(
            keymap.of([
              {
                key: 'Enter',
                run: () => {
                  cbs.current.onRun();
                  return true;
                },
              },
              {
                key: 'Shift-Enter',
                run: (ev) => {
                  ev.dispatch(ev.state.replaceSelection('\n'));
                  return true;
                },
              },
            ]),
          ),
          keymap.of([...completionKeymap, ...defaultKeymap, ...historyKeymap]),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) cbs.current.onChange(u.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
    // The editor is created once per language; value changes arrive below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [language]);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
    }
  }, [value]);

  return <div className="code-editor" ref={host} />;
}
