/*
 * Copyright (c) 2023 Shopfront contributors.
 * Licensed under the MIT License; see LICENSE in the project root.
 */
package shop;

import java.math.BigDecimal;
import java.util.LinkedHashMap;
import java.util.Map;

/** A shopping cart: quantities per product, totals in exact decimal arithmetic. */
public class Cart {
    private final Map<String, Integer> quantities = new LinkedHashMap<>();
    private final Map<String, BigDecimal> prices = new LinkedHashMap<>();

    public void add(String sku, BigDecimal unitPrice, int quantity) {
        if (quantity <= 0) {
            throw new IllegalArgumentException("quantity must be positive");
        }
        quantities.merge(sku, quantity, Integer::sum);
        prices.put(sku, unitPrice);
    }

    public void remove(String sku) {
        quantities.remove(sku);
        prices.remove(sku);
    }

    public BigDecimal total() {
        BigDecimal sum = BigDecimal.ZERO;
        for (Map.Entry<String, Integer> e : quantities.entrySet()) {
            sum = sum.add(prices.get(e.getKey()).multiply(BigDecimal.valueOf(e.getValue())));
        }
        return sum;
    }

    public int items() {
        return quantities.values().stream().mapToInt(Integer::intValue).sum();
    }
}
