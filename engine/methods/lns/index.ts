/** Registers the lns job kinds (filled in by the method issue). */
export {};
