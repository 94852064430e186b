/** Number of elements of a tensor of this shape. */
export function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
