// The release of heraldd and herald: its own module, so that `herald --version` loads nothing else.
export const VERSION = '0.1.0'
