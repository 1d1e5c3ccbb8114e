package shop;

import java.math.BigDecimal;
import java.math.RoundingMode;

/** Percentage and threshold discounts, applied in a fixed order so that totals are reproducible. */
public final class Discounts {
    private Discounts() {}

    public static BigDecimal percentOff(BigDecimal amount, int percent) {
        if (percent < 0 || percent > 100) {
            throw new IllegalArgumentException("percent must be within 0..100");
        }
        BigDecimal factor = BigDecimal.valueOf(100 - percent).divide(BigDecimal.valueOf(100));
        return amount.multiply(factor).setScale(2, RoundingMode.HALF_EVEN);
    }

    public static BigDecimal thresholdOff(BigDecimal amount, BigDecimal threshold, BigDecimal off) {
        if (amount.compareTo(threshold) >= 0) {
            return amount.subtract(off).max(BigDecimal.ZERO);
        }
        return amount;
    }
}
