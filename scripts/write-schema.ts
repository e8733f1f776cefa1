// `npm run schema`: regenerates shared/release-manifest.schema.json from the zod schema.
import fs from 'node:fs';
import { releaseManifestJsonSchema } from '../shared/release-manifest-json-schema.ts';

const file = new URL('../shared/release-manifest.schema.json', import.meta.url);
fs.writeFileSync(file, `${JSON.stringify(releaseManifestJsonSchema(), null, 2)}\n`);
console.log(`wrote ${file.pathname}`);
