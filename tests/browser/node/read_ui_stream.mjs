// Reads rxchat's UI message stream with the AI SDK's own transport (the HTTP client of useChat)
// and reader, and prints what the SDK made of it as JSON: the final UIMessage, the chunk types
// its schema accepted, and any error.
//   node read_ui_stream.mjs url BASE_URL     POST BASE_URL/api/ai-sdk/chat (sendMessages)
//   node read_ui_stream.mjs file BODY_FILE   a recorded response body
import { readFileSync } from "node:fs";
import { DefaultChatTransport, readUIMessageStream } from "ai";

const [mode, where] = process.argv.slice(2);
let chunks;
if (mode === "url") {
  const transport = new DefaultChatTransport({ api: `${where}/api/ai-sdk/chat` });
  chunks = await transport.sendMessages({
    chatId: "chat-1",
    trigger: "submit-message",
    messageId: undefined,
    messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: "Hello" }] }],
    abortSignal: undefined,
  });
} else {
  const transport = new DefaultChatTransport({ api: "unused" });
  chunks = transport.processResponseStream(new Response(readFileSync(where)).body);
}
const [forReader, forTypes] = chunks.tee();
const types = [];
const typesRead = (async () => { for await (const chunk of forTypes) types.push(chunk); })();
const errors = [];
let message = null;
let snapshots = 0;
try {
  for await (const m of readUIMessageStream({ stream: forReader, onError: (e) => errors.push(String(e)) })) {
    message = m;
    snapshots += 1;
  }
} catch (e) {
  errors.push(String(e));
}
await typesRead.catch((e) => errors.push(String(e)));
process.stdout.write(JSON.stringify({ message, snapshots, chunks: types, errors }));
