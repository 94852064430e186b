// Reference inputs and values of the project's divergences sheet: one example, 4 classes.
export const T_SHEET = [2.0, 1.0, 0.1, -1.0];
export const S_SHEET = [0.5, 1.5, -0.3, 0.0];
/** Forward KL(softmax(T_SHEET/T) ‖ softmax(S_SHEET/T)), without the T² factor, at T = 1 and 2. */
export const FKL_T1 = 0.4600413634;
export const FKL_T2 = 0.1191098041;
