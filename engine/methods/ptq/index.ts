/** Registers the ptq job kinds (filled in by the method issue). */
export {};
