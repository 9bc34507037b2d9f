/**
 * The entry point `pulumi up` loads (Pulumi.yaml `main: stacks/pulumi/`). Pulumi calls the
 * exported function and publishes what it returns as the stack outputs.
 */
import { promptmeshProgram } from './program';

export = promptmeshProgram;
