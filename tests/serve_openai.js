// Drives `intact serve` on 127.0.0.1:PORT with the official openai npm package (OPENAI_MODULE: its
// path). Prints four lines: a chat completion, the same streamed, then two concurrent sessions
// ("Once upon a time" and "The dog"), all at temperature 0, 24 tokens. Exit 1 on any error.
const OpenAI = require(process.env.OPENAI_MODULE);
const Client = OpenAI.OpenAI || OpenAI.default || OpenAI;
const port = process.argv[2];
const client = new Client({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'none', maxRetries: 0 });
const ask = (content) => client.chat.completions.create({
  model: 'm', messages: [{ role: 'user', content }], max_tokens: 24, temperature: 0, seed: 7 });
(async () => {
  const a = await ask('Once upon a time');
  if (!a.usage || a.usage.completion_tokens < 1) throw new Error('no usage');
  console.log(a.choices[0].message.content);
  const stream = await client.chat.completions.create({
    model: 'm', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 24, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content || '';
  console.log(text);
  const [x, y] = await Promise.all([ask('Once upon a time'), ask('The dog')]);
  console.log(x.choices[0].message.content);
  console.log(y.choices[0].message.content);
})().catch((e) => { console.error(String(e)); process.exit(1); });
