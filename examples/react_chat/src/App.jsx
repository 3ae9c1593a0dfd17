import {useChat} from "@ai-sdk/react";
import {DefaultChatTransport} from "ai";
import {useEffect, useMemo, useState} from "react";

// The chat survives a page reload: its id, its finished messages, and whether an answer was
// streaming (then useChat resumes it: GET /api/chat/{id}/stream replays the run from its start).
const STORE = "runstream-react-chat";

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE) ?? "null");
    if (saved && typeof saved.id === "string" && Array.isArray(saved.messages)) return saved;
  } catch {
    // A broken entry: start afresh.
  }
  return {id: crypto.randomUUID(), messages: [], pending: false};
}

// The assistant message's id is "msg-<run id>" (runstream's Vercel adapter): the run to cancel.
function runIdOf(message) {
  return message?.role === "assistant" && message.id.startsWith("msg-") ? message.id.slice(4) : null;
}

function textOf(message) {
  return message.parts.filter((part) => part.type === "text").map((part) => part.text).join("");
}

export function App() {
  const saved = useMemo(load, []);
  const transport = useMemo(() => new DefaultChatTransport({api: "/api/chat"}), []);
  const {messages, sendMessage, status, stop, error} = useChat({
    id: saved.id, messages: saved.messages, resume: saved.pending, transport,
  });
  const [input, setInput] = useState("");
  const [failAfter, setFailAfter] = useState(false);
  const busy = status === "submitted" || status === "streaming";

  useEffect(() => {
    // Keep what is finished; an answer still streaming is replayed whole on a reload.
    const last = messages.at(-1);
    const kept = busy && last?.role === "assistant" ? messages.slice(0, -1) : messages;
    localStorage.setItem(STORE, JSON.stringify({id: saved.id, messages: kept, pending: busy}));
  }, [messages, busy, saved.id]);

  async function onStop() {
    // Cancel the run on the server first (it goes on without its client otherwise), then
    // stop reading.
    const runId = runIdOf(messages.at(-1));
    if (runId) await fetch(`/runs/${runId}/cancel`, {method: "POST"});
    await stop();
  }

  function onSubmit(event) {
    event.preventDefault();
    if (!input.trim() || busy) return;
    sendMessage({text: input}, failAfter ? {body: {fail_after: 3}} : undefined);
    setInput("");
  }

  function onClear() {
    localStorage.removeItem(STORE);
    location.reload();
  }

  return (
    <main style={{maxWidth: 720, margin: "2rem auto", fontFamily: "system-ui, sans-serif"}}>
      <h1>runstream chat <small>(React, useChat)</small></h1>
      <ol data-testid="messages" style={{listStyle: "none", padding: 0}}>
        {messages.map((message) => (
          <li key={message.id} data-testid={`message-${message.role}`}
              data-message-id={message.id}
              style={{whiteSpace: "pre-wrap", margin: "0.5rem 0",
                      fontWeight: message.role === "user" ? "bold" : "normal"}}>
            {textOf(message)}
          </li>
        ))}
      </ol>
      {error && <p role="alert" data-testid="error" style={{color: "crimson"}}>
        {error.message}</p>}
      <p data-testid="status">{status}</p>
      <form onSubmit={onSubmit}>
        <textarea data-testid="prompt" value={input} rows={3} style={{width: "100%"}}
                  onChange={(event) => setInput(event.target.value)} />
        <label>
          <input type="checkbox" data-testid="fail" checked={failAfter}
                 onChange={(event) => setFailAfter(event.target.checked)} />
          {" "}fail after 3 words (the failure demo)
        </label>
        <div>
          <button type="submit" data-testid="send" disabled={busy}>Send</button>
          {" "}
          <button type="button" data-testid="stop" disabled={!busy} onClick={onStop}>Stop</button>
          {" "}
          <button type="button" data-testid="clear" onClick={onClear}>New chat</button>
        </div>
      </form>
    </main>
  );
}
