import { defineSuite } from './suite';
import { startAllInOne } from './support';

// All four services in this process (SERVICE=all): the router calls the others in-process.
defineSuite('all-in-one (SERVICE=all, in-process clients)', startAllInOne);
