/**
 * Runs the fake LLM provider as a process:
 *
 *   tsx test/fake-provider/main.ts [--port 9100] [--host 127.0.0.1] [--api-key K]
 *       [--anthropic-api-key K] [--azure-api-key K] [--aws-access-key-id K] [--gemini-api-key K]
 *       [--plan plan.json] [--record N]
 *
 * Steer it at run time with `POST /_fake/behavior`, `DELETE /_fake/behavior`,
 * `GET /_fake/requests`, `GET /_fake/stats` (see docs/fake-provider.md).
 */
import { readFileSync } from 'node:fs';
import { startFakeProvider, type FakeProviderOptions } from './server';

const USAGE =
  'usage: tsx test/fake-provider/main.ts [--port N] [--host H] [--api-key K] [--anthropic-api-key K] [--azure-api-key K] [--aws-access-key-id K] [--gemini-api-key K] [--plan FILE] [--record N]';

function parseArgs(argv: string[]): FakeProviderOptions {
  const options: FakeProviderOptions = { port: 9100 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    const need = () => {
      if (value === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      i++;
      return value;
    };
    const int = (name: string) => {
      const n = Number(need());
      if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be an integer >= 0, got '${value}'`);
      return n;
    };
    switch (flag) {
      case '--port':
        options.port = int('--port');
        break;
      case '--host':
        options.host = need();
        break;
      case '--api-key':
        options.apiKey = need();
        break;
      case '--anthropic-api-key':
        options.anthropicApiKey = need();
        break;
      case '--azure-api-key':
        options.azureApiKey = need();
        break;
      case '--aws-access-key-id':
        options.awsAccessKeyId = need();
        break;
      case '--gemini-api-key':
        options.geminiApiKey = need();
        break;
      case '--plan':
        options.plan = JSON.parse(readFileSync(need(), 'utf8'));
        break;
      case '--record':
        options.recordRequests = int('--record');
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument '${flag}'\n${USAGE}`);
    }
  }
  return options;
}

async function main(): Promise<void> {
  const fake = await startFakeProvider(parseArgs(process.argv.slice(2)));
  console.log(`fake provider listening on ${fake.url} (OpenAI base ${fake.url}/v1; Anthropic, Azure OpenAI, Bedrock and Gemini base ${fake.url})`);
  const stop = () => {
    void fake.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
