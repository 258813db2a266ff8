// Independent client: the TypeScript SDK drives mcp-desk and prints what it saw as one JSON object.
// Usage: node ts_client.mjs stdio <command> [args...]   |   node ts_client.mjs http <url> <api-key>
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, target, ...rest] = process.argv.slice(2);
const transport =
  mode === "stdio"
    ? new StdioClientTransport({ command: target, args: rest, env: process.env, stderr: "inherit" })
    : new StreamableHTTPClientTransport(new URL(target), {
        requestInit: { headers: { Authorization: `Bearer ${rest[0]}` } },
      });

const client = new Client({ name: "mcp-desk-interop-ts", version: "1.0.0" });
await client.connect(transport);
const tools = (await client.listTools()).tools.map((tool) => tool.name);
const created = await client.callTool({ name: "create_note", arguments: { title: "TS SDK note", body: "from TypeScript" } });
const noteId = created.structuredContent.id;
const fetched = await client.callTool({ name: "get_note", arguments: { note_id: noteId } });
const resource = await client.readResource({ uri: `note://${noteId}` });
let ticketId = "t1";
if (tools.includes("create_ticket")) {
  const ticket = await client.callTool({ name: "create_ticket", arguments: { title: "VPN down", description: "Users cannot connect" } });
  ticketId = ticket.structuredContent.id;
}
const prompt = await client.getPrompt({ name: "triage_ticket", arguments: { ticket_id: ticketId } });
await client.close();

process.stdout.write(
  JSON.stringify({
    server: client.getServerVersion(),
    tools,
    created: created.structuredContent,
    fetched: fetched.structuredContent,
    fetchedIsError: fetched.isError ?? false,
    resourceText: resource.contents[0].text,
    promptMessages: prompt.messages.length,
    ticketId,
  }) + "\n",
);
