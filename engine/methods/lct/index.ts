/** Registers the lct job kinds (filled in by the method issue). */
export {};
