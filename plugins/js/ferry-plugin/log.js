// Log lines through the host: `log.info('...')`, tagged by the host with the
// pipeline, the stage and the plugin digest.

import { log as hostLog } from 'ferry:plugin/host@0.1.4';

export const trace = (message) => hostLog('trace', message);
export const debug = (message) => hostLog('debug', message);
export const info = (message) => hostLog('info', message);
export const warn = (message) => hostLog('warn', message);
export const error = (message) => hostLog('error', message);
