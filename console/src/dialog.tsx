/** Modal dialogs the pages share (keyboard: focus moves in, Escape cancels). */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

let dialogs = 0;

/**
 * A question in a modal dialog, answered with Confirm or Cancel (Cancel has the focus, so a
 * stray Enter changes nothing). `children` may hold inputs the answer depends on.
 */
export function Confirm({ question, onAnswer, confirmLabel = 'Confirm', children }: { question: string; onAnswer: (yes: boolean) => void; confirmLabel?: string; children?: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  const id = useRef(`confirm-text-${++dialogs}`);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} aria-labelledby={id.current} onCancel={() => onAnswer(false)}>
      <p id={id.current}>{question}</p>
      {children}
      <div class="toolbar">
        <button type="button" onClick={() => onAnswer(true)}>
          {confirmLabel}
        </button>
        <button type="button" onClick={() => onAnswer(false)} autofocus>
          Cancel
        </button>
      </div>
    </dialog>
  );
}
