import { defineSuite } from './suite';
import { startMesh } from './support';

// Four processes of `node --import tsx services/main.ts`, wired by URL: the router's HTTP clients.
defineSuite('mesh (four processes, HTTP clients)', startMesh);
