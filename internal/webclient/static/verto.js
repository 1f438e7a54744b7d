export function x() {}
